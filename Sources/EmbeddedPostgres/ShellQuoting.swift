import Foundation

/// Quoting for `/bin/sh`, used to build the watchdog script and readable command lines in errors.
enum ShellQuoting {
    /// Wraps `word` in single quotes so the shell takes it literally; an embedded `'` becomes `'\''`.
    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// Quotes `word` only when it holds characters the shell would interpret, keeping error messages tidy.
    static func quoteIfNeeded(_ word: String) -> String {
        let plain =
            !word.isEmpty
            && word.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || "-_./=:@,+%".unicodeScalars.contains($0)
            }
        return plain ? word : quote(word)
    }
}
