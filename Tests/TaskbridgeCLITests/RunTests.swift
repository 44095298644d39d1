import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// `taskbridge run` as operators run it, under what real systems do to it.
@Suite(.serialized, .heavy) struct RunTests {
    /// PrismQ's BaseWorker can hold the write lock for minutes (spec legacy
    /// 10.1). The daemon starts anyway, says so once, and catches up; a
    /// one-shot command gives up with a message naming the lock.
    @Test func waitsOutAnotherProcesssWriteLock() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], startEngine: false) { h in
            // Installed first, so the lock holder is what `run` meets at start.
            let conf = try h.writeConfig(name: "install.conf", url: h.tm.baseURL)
            #expect(try await CLIRun.run(["install"], harness: h, config: conf).status == 0)
            let holder = try LockHolder(path: h.legacyPath)
            defer { holder.release() }
            try await holder.waitUntilHeld()

            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    let wait =
                        (try? JSONParser.parse(try await bridge.health()))?["legacy_lock_wait_seconds"]?.doubleValue
                        ?? 0
                    return wait > 0 && bridge.stderrText.contains("write-locked by another process")
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    (try? PrometheusText(try await bridge.metrics()).sum("taskbridge_legacy_lock_wait_seconds")) ?? 0
                        > 0
                })
            let oneShot = try await CLIRun.run(
                ["cutover", channel.legacyType, "off", "--reason", "x"], harness: h, config: conf)
            #expect(
                oneShot.status == 3 && oneShot.stderr.contains("locked by another process"),
                "\(oneShot.status) \(oneShot.stderr)")
            #expect(bridge.isRunning)

            holder.release()
            #expect(
                try await eventually(timeout: .seconds(30)) { bridge.stderrText.contains("write lock is free again") })
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "after-lock"}"#)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [id])
                        == 1
                })
            let log = bridge.stderrText
            #expect(log.components(separatedBy: "write-locked by another process").count == 2, "one warning per wait")
            #expect(!log.contains("loop failed"), "\(log.suffix(2000))")
            _ = try await bridge.expectServing("after the lock")
        }
    }

    /// Stop during an outage: requests that hang are cancelled after a short
    /// grace (the request timeout here is 60 s); their intents stay.
    @Test func gracefulStopDoesNotWaitForHangingRequests() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            let bridge = try await BridgeProcess.started(h, type: channel)
            defer { Task { await bridge.kill() } }
            proxy.set(.swallowResponse)
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "hang"}"#)
            #expect(try await eventually(timeout: .seconds(20)) { proxy.count("POST /api/tasks") >= 1 })
            bridge.terminate()
            // Well inside the 60 s request timeout: the stop did not wait for it.
            #expect(try await bridge.waitForExit(timeout: .seconds(30)) == 0, "\(bridge.stderrText.suffix(2000))")
            #expect(bridge.stderrText.contains("stopped cleanly"))
            #expect(
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'intent'", [id])
                    == 1)
        }
    }

    /// Garbage answers (NUL, invalid UTF-8) reach the log escaped; a server
    /// that echoes the key never gets it into logs, metrics, health or status.
    @Test func logsAreTextAndTheKeyNeverLeaks() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            let bridge = try await BridgeProcess.started(h, type: channel)
            defer { Task { await bridge.kill() } }
            proxy.set(.raw(502, bytes: Array("bad\u{0}gate".utf8) + [0xFF, 0xFE, 0x0A] + Array("way".utf8)))
            try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "garbage"}"#)
            #expect(try await eventually(timeout: .seconds(20)) { bridge.stderrText.contains("bad\\u{0}gate") })
            let bytes = bridge.child.stderrBytes
            #expect(!bytes.contains(0), "a NUL reached the log")
            #expect(String(validating: bytes, as: UTF8.self) != nil, "invalid UTF-8 reached the log")
            #expect(
                bridge.stderrText.contains("\\xff\\xfe") || bridge.stderrText.contains("\\u{fffd}")
                    || bridge.stderrText.contains("\u{FFFD}"))

            proxy.set(.echoKey(500))
            let before = proxy.total()
            #expect(try await eventually(timeout: .seconds(30)) { proxy.total() > before + 1 })
            #expect(
                try await eventually(timeout: .seconds(20)) { bridge.stderrText.contains("Invalid key '[redacted]'") })
            let status = try await CLIRun.run(["status", "--json"], harness: h, config: bridge.configPath)
            let metrics = try await bridge.metrics()
            let health = try await bridge.health()
            for (what, text) in [
                ("log", bridge.stderrText), ("metrics", metrics), ("health", health),
                ("status", status.stdout + status.stderr),
            ] {
                #expect(!text.contains(h.tm.apiKey), "the API key reached the \(what)")
            }
        }
    }

    @Test func jsonLogsAreOneObjectPerLine() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true, environment: ["LOG_FORMAT": "json"])
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            try h.producer().insert(type: channel.legacyType, parameters: "not data")
            #expect(try await eventually(timeout: .seconds(20)) { bridge.stderrText.contains("row quarantined") })
            bridge.terminate()
            #expect(try await bridge.waitForExit(timeout: .seconds(30)) == 0)
            let lines = bridge.stderrText.split(separator: "\n")
            #expect(lines.count >= 3)
            for line in lines {
                let object = try JSONParser.parse(String(line))
                #expect(object["level"]?.stringValue != nil && object["message"]?.stringValue != nil, "\(line)")
            }
            let quarantine = try #require(lines.first { $0.contains("row quarantined") })
            let q = try JSONParser.parse(String(quarantine))
            #expect(
                q["reason"] == "params_unparseable" && q["type"] == .string(channel.legacyType)
                    && q["level"] == "warning")
        }
    }
}

/// A separate process holding the legacy file's write lock, as a wedged
/// BaseWorker does: Python's sqlite3, `BEGIN IMMEDIATE`, until released.
final class LockHolder: Sendable {
    let process: AsyncProcess
    let marker: String

    init(path: String) throws {
        marker = path + ".held"
        let script = """
            import os, sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE _taskbridge_echo SET active = active WHERE id = 1")
            open(sys.argv[2], "w").close()
            parent = os.getppid()
            end = time.time() + 300
            while os.path.exists(sys.argv[2]) and os.getppid() == parent and time.time() < end:
                time.sleep(0.05)
            c.execute("ROLLBACK")
            """
        process = AsyncProcess(
            executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: ["python3", "-c", script, path, marker])
        try process.start()
    }

    func waitUntilHeld() async throws {
        let held = try await eventually(timeout: .seconds(20)) {
            FileManager.default.fileExists(atPath: self.marker) || !self.process.isRunning
        }
        guard held, process.isRunning else { throw HarnessError("lock holder did not start: \(process.stderr)") }
    }

    func release() {
        try? FileManager.default.removeItem(atPath: marker)
    }
}
