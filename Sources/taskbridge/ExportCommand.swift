import ArgumentParser
import Foundation
import GRDB
import LegacyQueue
import TaskManagerModel

/// `taskbridge export --out FILE.jsonl` / `--check FILE.jsonl`: a verified
/// archive of the legacy table and the bridge's records.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write (or check) a JSON Lines archive of task_queue and the ledger, with counts and a SHA-256.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Archive to write.") var out: String?
    @Option(help: "Archive to verify.") var check: String?

    func validate() throws {
        guard (out == nil) != (check == nil) else {
            throw ValidationError("give exactly one of --out FILE or --check FILE")
        }
    }

    func run() async throws {
        if let check {
            let r = try ArchiveChecker.check(path: check)
            print(r.message)
            if !r.ok { throw CLIError(code: .problems, message: "archive \(check) does not verify") }
            return
        }
        let config = try options.load()
        let store = try CLI.openExisting(config)
        let counts = try await ArchiveWriter.write(
            store: store, to: out!, database: config.legacy.database, progress: ProgressBar(enabled: true))
        print("wrote \(out!): " + counts.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        try store.close()
    }
}

/// Lossless JSON for one SQLite value: integers and reals as numbers, valid
/// UTF-8 text as strings, anything else as base64 with its storage class.
enum ArchiveValue {
    static func json(type: String, bytes: Data?) -> JSONValue {
        guard let bytes else { return .null }
        let text = String(data: bytes, encoding: .utf8)
        switch type {
        case "integer": return text.flatMap { Int64($0) }.map { .int($0) } ?? .string(text ?? "")
        case "real": return text.flatMap { Double($0) }.map { .double($0) } ?? .string(text ?? "")
        case "text":
            if let s = String(validating: [UInt8](bytes), as: UTF8.self) { return .string(s) }
            return ["$text_base64": .string(bytes.base64EncodedString())]
        case "blob": return ["$blob_base64": .string(bytes.base64EncodedString())]
        default: return .null
        }
    }
}

enum ArchiveWriter {
    /// The archive keeps the entries of earlier generations (a recreated or
    /// restored queue): never applied, always exported.
    static var bridgeTables: [String] { BridgeObjects.recordTables }

    /// Streams every row in one read transaction (a consistent snapshot);
    /// the hash covers every byte before the trailer line.
    static func write(
        store: LegacyQueueStore, to path: String, database: String, progress: ProgressBar
    ) async throws -> [(String, Int)] {
        guard FileManager.default.createFile(atPath: path + ".partial", contents: nil) else {
            throw CLIError.runtime("cannot create \(path)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + ".partial"))
        let table = store.schema.table
        let counts: [(String, Int)] = try await store.read { db in
            var hasher = SHA256Digest()
            var buffer = Data()
            func emit(_ v: JSONValue) throws {
                let line = Data((PHPJSON.encode(v) + "\n").utf8)
                hasher.update(line)
                buffer.append(line)
                if buffer.count > 1 << 20 {
                    try handle.write(contentsOf: buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try emit([
                "kind": "header", "format": "taskbridge-export", "version": 1, "database": .string(database),
                "table": .string(table), "exported_at": .string(LegacyTimestamp.format(Date())),
            ])
            var counts: [(String, Int)] = []
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \"\(table)\"") ?? 0
            for name in [table] + bridgeTables where try db.tableExists(name) {
                let columns = try db.columns(in: name).map(\.name)
                let select = columns.map { "typeof(\"\($0)\"), CAST(\"\($0)\" AS BLOB)" }.joined(separator: ", ")
                // Primary-key order: the same file exports the same bytes.
                let order = try db.primaryKey(name).columns.map { "\"\($0)\"" }.joined(separator: ", ")
                let cursor = try Row.fetchCursor(db, sql: "SELECT \(select) FROM \"\(name)\" ORDER BY \(order)")
                var n = 0
                while let row = try cursor.next() {
                    var members: [JSONMember] = []
                    for (i, c) in columns.enumerated() {
                        members.append(JSONMember(c, ArchiveValue.json(type: row[i * 2], bytes: row[i * 2 + 1])))
                    }
                    try emit(["kind": .string(name == table ? "task_queue" : name), "row": .object(members)])
                    n += 1
                    if name == table && n % 5000 == 0 { progress.update(n, total) }
                }
                counts.append((name == table ? "task_queue" : name, n))
            }
            progress.finish()
            try handle.write(contentsOf: buffer)
            let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            let trailer: JSONValue = [
                "kind": "trailer", "counts": .object(counts.map { JSONMember($0.0, .int(Int64($0.1))) }),
                "sha256": .string(digest),
            ]
            try handle.write(contentsOf: Data((PHPJSON.encode(trailer) + "\n").utf8))
            return counts
        }
        try handle.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: path + ".partial", toPath: path)
        return counts
    }
}

enum ArchiveChecker {
    struct Result { var ok: Bool; var message: String }

    /// Re-reads an archive line by line: every line must be JSON, the counts
    /// per kind and the SHA-256 of everything before the trailer must match.
    static func check(path: String) throws -> Result {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError.config("cannot open \(path)") }
        defer { try? handle.close() }
        var hasher = SHA256Digest()
        var counts: [String: Int] = [:]
        var trailer: JSONValue?
        var pending = Data()
        var lineNo = 0
        func take(_ line: Data) -> Result? {
            lineNo += 1
            guard let v = try? JSONParser.parse([UInt8](line.dropLast())) else {
                return Result(ok: false, message: "line \(lineNo) is not JSON")
            }
            if trailer != nil { return Result(ok: false, message: "line \(lineNo) follows the trailer") }
            if v["kind"] == .string("trailer") {
                trailer = v
                return nil
            }
            hasher.update(line)
            if let k = v["kind"]?.stringValue, k != "header" { counts[k, default: 0] += 1 }
            return nil
        }
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex...nl]
                if let bad = take(Data(line)) { return bad }
                pending.removeSubrange(pending.startIndex...nl)
            }
        }
        if !pending.isEmpty { return Result(ok: false, message: "the last line is incomplete (truncated archive)") }
        guard let trailer else { return Result(ok: false, message: "no trailer line: the archive is truncated") }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        guard trailer["sha256"]?.stringValue == digest else {
            return Result(ok: false, message: "SHA-256 mismatch: the archive was modified (computed \(digest))")
        }
        for m in trailer["counts"]?.objectMembers ?? [] where Int64(counts[m.key] ?? 0) != m.value.intValue {
            return Result(
                ok: false,
                message: "count mismatch for \(m.key): trailer \(m.value.intValue ?? -1), found \(counts[m.key] ?? 0)")
        }
        return Result(
            ok: true,
            message: "archive verifies: "
                + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                + ", sha256 \(digest)")
    }
}
