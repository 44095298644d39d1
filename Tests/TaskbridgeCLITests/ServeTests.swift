import Foundation
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// `taskbridge serve` as a child process.
@Suite(.serialized, .heavy) struct ServeTests {
    /// `dir` holds the server's database; the caller keeps it alive.
    func startServe(
        _ extra: [String], in dir: TemporaryDirectory, environment: [String: String] = [:]
    ) async throws -> (AsyncProcess, String) {
        var env = ProcessInfo.processInfo.environment
        env["TASKMANAGER_API_KEY"] = nil
        for (k, v) in environment { env[k] = v }
        let p = AsyncProcess(
            executable: try TaskbridgeBinary.url(),
            arguments: [
                "serve", "--listen", "127.0.0.1:0", "--database", dir.path("tm.db"), "--config", dir.path("none.conf"),
            ] + extra,
            environment: env)
        try p.start()
        var url = ""
        let up = try await eventually(timeout: .seconds(30)) {
            url =
                p.stdout.split(separator: "\n").first { $0.hasPrefix("listening ") }.map { String($0.dropFirst(10)) }
                ?? ""
            return !url.isEmpty || !p.isRunning
        }
        guard up, p.isRunning else { throw HarnessError("serve did not start: \(p.stderr)") }
        return (p, url)
    }

    @Test func keyFromAFileAndAWarningForTheFlag() async throws {
        let keyDir = try TemporaryDirectory()
        let keyFile = keyDir.path("key")
        try "file-key-123\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let (p, url) = try await startServe(["--api-key-file", keyFile, "--max-params-bytes", "64"], in: keyDir)
        defer { Task { await p.kill() } }
        let client = TaskManagerClient(configuration: try ClientConfiguration(baseURL: url, apiKey: "file-key-123"))
        defer { Task { await client.shutdown() } }
        _ = try await client.registerTaskType(name: "t.a", version: "1", paramSchema: ["type": "object"])
        #expect(try await client.createTask(type: "t.a", params: ["a": 1]).id > 0)
        // Above --max-params-bytes: a clear 4xx naming the limit, not the PHP 500.
        do throws(TaskManagerError) {
            _ = try await client.createTask(type: "t.a", params: ["a": .string(String(repeating: "x", count: 100))])
            Issue.record("expected a refusal")
        } catch {
            #expect(
                error == .validation("Params too large: 108 bytes encoded, the limit is 64 bytes", details: []),
                "\(error)")
        }
        #expect(!p.stderr.contains("--api-key puts the key"))

        let other = try TemporaryDirectory()
        let (flagged, _) = try await startServe(["--api-key", "flag-key-456"], in: other)
        defer { Task { await flagged.kill() } }
        #expect(try await eventually { flagged.stderr.contains("--api-key puts the key where ps shows it") })
        #expect(!flagged.stderr.contains("flag-key-456"))
    }
}
