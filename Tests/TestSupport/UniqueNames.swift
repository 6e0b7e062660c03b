import Foundation

/// `prefix`, `_` and 10 random lower-case letters and digits: a name no parallel test uses, and a valid SQL
/// identifier without quoting (for tables, roles and `application_name`s).
public func uniqueName(_ prefix: String) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return prefix + "_" + String((0..<10).map { _ in alphabet.randomElement()! })
}

/// `prefix`, `-` and 13 characters of a UUID: a workflow ID no other test uses (in-process counters and gates are
/// keyed by workflow ID and shared by every test of the process).
public func uniqueID(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.lowercased().prefix(13))"
}
