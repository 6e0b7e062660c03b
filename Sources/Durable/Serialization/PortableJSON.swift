import Foundation

/// DBOS's `portable_json` format: plain JSON that Python, Go and TypeScript DBOS read as well.
///
/// Dates are RFC 3339 in UTC with milliseconds (`2026-01-02T03:04:05.678Z`). Workflow inputs are wrapped as
/// `{"positionalArgs":[input],"namedArgs":{}}`; errors as `{"name","message","code"}`.
enum PortableJSON {
    /// The value of the `serialization` column for rows we write.
    static let formatName = "portable_json"

    static func encode<Value: Encodable>(_ value: Value, limit: Int, what: @autoclosure () -> String) throws -> String {
        // A string's JSON is at least as long as its UTF-8: one far above the limit is refused without building
        // an encoding as large as itself first.
        if let text = value as? String, text.utf8.count > limit {
            throw DurableError(
                .payloadTooLarge,
                "\(what()) is at least \(text.utf8.count) bytes encoded, above the limit of \(limit) bytes (DurableConfiguration.maxPayloadBytes)"
            )
        }
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw DurableError(.encodingFailed, "\(what()) could not be encoded as JSON: \(error)")
        }
        guard data.count <= limit else {
            throw DurableError(
                .payloadTooLarge,
                "\(what()) is \(data.count) bytes encoded, above the limit of \(limit) bytes (DurableConfiguration.maxPayloadBytes)"
            )
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from text: String, what: @autoclosure () -> String) throws
        -> Value
    {
        do {
            return try decoder.decode(Value.self, from: Data(text.utf8))
        } catch {
            throw DurableError(
                .corruptedCheckpoint, "\(what()) could not be decoded as \(Value.self): \(describe(error))")
        }
    }

    /// Encodes a workflow's single input the way DBOS stores arguments.
    static func encodeInput<Input: Encodable>(_ input: Input, limit: Int) throws -> String {
        if let text = input as? String, text.utf8.count > limit {
            throw DurableError(
                .payloadTooLarge,
                "the workflow input is at least \(text.utf8.count) bytes encoded, above the limit of \(limit) bytes (DurableConfiguration.maxPayloadBytes)"
            )
        }
        return try encode(InputEnvelope(positionalArgs: [input]), limit: limit, what: "the workflow input")
    }

    /// Decodes a workflow input written by us, by DBOS's client, or by `dbos.enqueue_workflow`: the first
    /// positional argument.
    static func decodeInput<Input: Decodable>(_ type: Input.Type, from text: String) throws -> Input {
        let envelope = try decode(DecodingInputEnvelope<Input>.self, from: text, what: "the workflow input")
        return envelope.first
    }

    /// Shared coders: Foundation's are thread-safe, and building one per value costs more than the encoding.
    static let encoder = makeEncoder()
    static let decoder = makeDecoder()

    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an RFC 3339 date")
            }
            return date
        }
        return decoder
    }

    /// RFC 3339 in UTC with exactly three fractional digits, rounded to the nearest millisecond. (Foundation's
    /// formatter truncates, and binary floating point stores .678 as .67799…, which would print .677.)
    static func formatDate(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = milliseconds / 1000
        var fraction = milliseconds % 1000
        if fraction < 0 {
            seconds -= 1
            fraction += 1000
        }
        let whole = Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(
            Date.ISO8601FormatStyle(timeZone: .gmt))
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - String(fraction).count) + String(fraction)
            + "Z"
    }

    static func parseDate(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// A decoding error's gist without the payload itself.
    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(let type, let context):
            return "expected \(type) at \(path(context.codingPath))"
        case DecodingError.valueNotFound(let type, let context):
            return "missing \(type) at \(path(context.codingPath))"
        case DecodingError.keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)' at \(path(context.codingPath))"
        case DecodingError.dataCorrupted(let context):
            return "malformed data at \(path(context.codingPath))"
        default:
            return "invalid data"
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.isEmpty ? "the top level" : codingPath.map(\.stringValue).joined(separator: ".")
    }
}

/// `{"positionalArgs":[…],"namedArgs":{}}`
private struct InputEnvelope<Input: Encodable>: Encodable {
    var positionalArgs: [Input]
    var namedArgs: [String: String] = [:]
}

/// Reads only the first positional argument, whatever follows it.
private struct DecodingInputEnvelope<Input: Decodable>: Decodable {
    var first: Input

    private enum CodingKeys: String, CodingKey { case positionalArgs }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var arguments = try container.nestedUnkeyedContainer(forKey: .positionalArgs)
        if arguments.isAtEnd, let none = Optional<Any>.none as? Input {
            // A workflow whose input is optional may be started with no argument at all.
            first = none
            return
        }
        first = try arguments.decode(Input.self)
    }
}
