import Foundation
import Logging
import Synchronization
import TaskManagerModel

/// The log backend of every command: one line per event on stderr, human
/// (default) or one JSON object per line (`LOG_FORMAT=json`, for log
/// shippers). Messages and metadata often quote answers and legacy rows:
/// control characters and invalid UTF-8 are escaped here, once for every
/// source, so no log line carries them raw.
struct LineLogHandler: LogHandler {
    enum Format: Sendable { case human, json }

    let label: String
    let format: Format
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let output = Mutex(())

    static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let format: Format = environment["LOG_FORMAT"]?.lowercased() == "json" ? .json : .human
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format) }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let m = event.metadata { all.merge(m) { _, new in new } }
        let line = Self.render(
            format: format, label: label, level: event.level, message: event.message.description,
            metadata: all, date: Date())
        Self.output.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    static func render(
        format: Format, label: String, level: Logger.Level, message: String, metadata: Logger.Metadata,
        date: Date
    ) -> String {
        let time = timestamp(date)
        let keys = metadata.keys.sorted()
        switch format {
        case .human:
            let fields = keys.map { "\(LogSafe.escape($0))=\(LogSafe.escape(text(metadata[$0]!)))" }.joined(
                separator: " ")
            return "\(time) \(level) \(label) :" + (fields.isEmpty ? "" : " \(fields)") + " \(LogSafe.escape(message))"
        case .json:
            var members = [
                JSONMember("ts", .string(time)), JSONMember("level", .string(level.rawValue)),
                JSONMember("logger", .string(label)),
                JSONMember("message", .string(message)),
            ]
            for k in keys where !["ts", "level", "logger", "message"].contains(k) {
                members.append(JSONMember(k, .string(text(metadata[k]!))))
            }
            // PHPJSON escapes every control character as \u00xx.
            return PHPJSON.encode(.object(members))
        }
    }

    static func text(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(text).joined(separator: ", ") + "]"
        case .dictionary(let d):
            return "[" + d.keys.sorted().map { "\($0): \(text(d[$0]!))" }.joined(separator: ", ") + "]"
        }
    }

    static func timestamp(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}
