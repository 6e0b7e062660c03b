/// An error as DBOS's `portable_json` records it: `{"name":…,"message":…,"code":…}`.
///
/// Only the error's type name and its description are kept, so a Python or Go reader can show it, and a replay
/// can throw the same ``DurableError`` the first run threw.
struct PortableError: Codable, Sendable, Equatable {
    var name: String
    var message: String
    var code: String?

    init(name: String, message: String, code: String? = nil) {
        self.name = name
        self.message = message
        self.code = code
    }

    /// Describes an error thrown by user code. A ``DurableError`` from a failed step keeps the step's original
    /// error name, so a workflow that simply lets a step's error through records that error.
    init(describing error: any Error) {
        if let durable = error as? DurableError {
            self.init(name: durable.errorName ?? "DurableError", message: durable.message, code: durable.code.rawValue)
        } else {
            self.init(name: String(describing: type(of: error)), message: String(describing: error))
        }
    }

    private enum CodingKeys: String, CodingKey { case name, message, code }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? "Error"
        message = try container.decodeIfPresent(String.self, forKey: .message) ?? ""
        // Other languages store an integer, a string or null.
        if let text = try? container.decodeIfPresent(String.self, forKey: .code) {
            code = text
        } else if let number = try? container.decodeIfPresent(Int.self, forKey: .code) {
            code = String(number)
        } else {
            code = nil
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(message, forKey: .message)
        // DBOS always writes the key, null when there is no code.
        try container.encode(code, forKey: .code)
    }
}
