import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// `verify`, `retire-check`, `export` and `uninstall` through the real CLI
/// against the embedded server and a real SQLite file (issue 4).
@Suite(.serialized, .heavy) struct ParityTests {
    /// Forwards `count` rows and completes them, then stops the engine so the
    /// test can create divergences behind it.
    func settled(_ h: BridgeHarness, count: Int = 6) async throws -> [Int64] {
        let producer = try h.producer()
        var ids: [Int64] = []
        for i in 0..<count {
            ids.append(try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "p\#(i)"}"#))
        }
        let typeID = try await h.typeID(channel.name)
        let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
        let done = try await eventually(timeout: .seconds(20)) {
            while try await api.runOnce() != nil {}
            return try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'done'") == count
        }
        #expect(done)
        await h.stopEngine()
        return ids
    }

    func verify(_ h: BridgeHarness, _ extra: [String] = []) async throws -> (Int32, JSONValue) {
        let r = try await CLIRun.run(["verify", "--json", "--grace", "0"] + extra, harness: h)
        return (r.status, try JSONParser.parse(r.stdout))
    }

    func classes(_ json: JSONValue) -> [String: Int] {
        var out: [String: Int] = [:]
        for f in json["findings"]?.arrayValue ?? [] { out[f["class"]!.stringValue!, default: 0] += 1 }
        return out
    }

    @Test func cleanParityExitsZero() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            _ = try await settled(h)
            let (status, json) = try await verify(h)
            #expect(status == 0)
            #expect(json["parity"] == true && json["checked_rows"] == 6)
            #expect(classes(json).isEmpty)
        }
    }

    @Test func eachDivergenceIsClassified() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let ids = try await settled(h)
            let producer = try h.producer()
            try producer.execute("UPDATE task_queue SET status = 'failed' WHERE id = ?", [ids[0]])  // status
            try producer.execute(
                // payload
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "edited"}"#, ids[1]])
            try producer.execute("DELETE FROM task_queue WHERE id = ?", [ids[2]])  // missing in SQLite
            try producer.execute("DELETE FROM _taskbridge_ledger WHERE legacy_id = ?", [ids[3]])  // unlinked row
            _ = try await h.tm.client.createTask(type: channel.name, params: ["channel_url": "native"])  // API-native
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'off'")
            // queued, not forwarded
            let queued = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "never"}"#)
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'forward'")
            let (status, json) = try await verify(h)
            #expect(status == 1)
            let c = classes(json)
            #expect(c["status_diverged"] == 1)
            #expect(c["payload_diverged"] == 1)
            #expect(c["missing_in_sqlite"] == 1)
            #expect(c["missing_in_taskmanager"] == 2)  // the unlinked row and the queued one
            #expect(c["api_native"] == 2)  // the native task and the unlinked row's task
            let findings = json["findings"]!.arrayValue!
            #expect(findings.contains { $0["class"] == "status_diverged" && $0["legacy_id"] == .int(ids[0]) })
            #expect(findings.contains { $0["class"] == "payload_diverged" && $0["legacy_id"] == .int(ids[1]) })
            #expect(findings.contains { $0["class"] == "missing_in_sqlite" && $0["legacy_id"] == .int(ids[2]) })
            #expect(findings.contains { $0["class"] == "missing_in_taskmanager" && $0["legacy_id"] == .int(queued) })
            #expect(json["summary"]?["youtube_channel_scrape"]?["status_diverged"] == 1)
        }
    }

    @Test func quarantinedAndCollapsedAreReported() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            _ = try await settled(h, count: 1)
            h.startEngine()
            try producer.insert(type: "youtube_channel_scrape", parameters: "{bad")
            // collapses onto a done task
            try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "p0"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('done','quarantined')") == 3
                })
            await h.stopEngine()
            let (status, json) = try await verify(h)
            #expect(status == 1, "a quarantined row breaks parity")
            #expect(classes(json) == ["quarantined": 1, "collapsed": 1])
        }
    }

    /// Many rows collapsed onto one task are fetched once and verify cleanly.
    @Test func manyCollapsedRowsVerifyCleanly() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            try producer.insertBatch(
                type: "youtube_channel_scrape", parameters: Array(repeating: #"{"channel_url": "same"}"#, count: 40))
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 40
                })
            await h.stopEngine()
            let (status, json) = try await verify(h)
            #expect(status == 0, "\(json["read_errors"] ?? .null)")
            // One row created the shared task; the other 39 found it: 39 collapses.
            #expect(classes(json) == ["collapsed": 39])
        }
    }

    @Test func intentsNotYetDueAreNotFindings() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let later = LegacyTimestamp.format(Date().addingTimeInterval(3600))
            try h.producer().insert(
                type: "youtube_channel_scrape", parameters: #"{"channel_url": "tomorrow"}"#, runAfter: later)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent'") == 1
                })
            await h.stopEngine()
            let (status, json) = try await verify(h)
            #expect(status == 0 && classes(json).isEmpty)
        }
    }

    @Test func rowsInFlightInsideTheGraceWindowAreNotFindings() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            _ = try await settled(h, count: 1)
            // Claimed at capture, but the (stopped) bridge has not forwarded it yet.
            try h.producer().insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "young"}"#)
            let (inGrace, json) = try await verify(h, ["--grace", "3600"])
            #expect(inGrace == 0 && classes(json).isEmpty)
            let (afterGrace, late) = try await verify(h)
            #expect(afterGrace == 1 && classes(late) == ["missing_in_taskmanager": 1])
        }
    }

    @Test func repairFixesWhatItClaims() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let ids = try await settled(h)
            let producer = try h.producer()
            try producer.execute("UPDATE task_queue SET status = 'failed', result_data = NULL WHERE id = ?", [ids[0]])
            try producer.execute(
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "edited"}"#, ids[1]])
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'off'")
            let queued = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "late"}"#)
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'forward'")
            let r = try await CLIRun.run(["verify", "--json", "--grace", "0", "--repair"], harness: h)
            let json = try JSONParser.parse(r.stdout)
            #expect(r.status == 1, "the payload divergence cannot be repaired")
            #expect(json["before_repair"]?["breaking_findings"] == 3)
            #expect(classes(json) == ["payload_diverged": 1])
            #expect(
                (json["not_repaired"]?.arrayValue ?? []).contains { $0.stringValue?.contains("row \(ids[1])") == true })
            #expect(try h.rows(where: "id = ?", [ids[0]]).first?["status"] as String? == "completed")
            #expect(
                try h.scalar(
                    "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND tm_task_id IS NOT NULL", [queued])
                    == 1)
        }
    }

    @Test func retireCheckFailsForEachUnmetConditionAndPassesWhenAllHold() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            _ = try await settled(h, count: 3)
            func check(_ quiet: String = "0s") async throws -> (Int32, [String: Bool]) {
                let r = try await CLIRun.run(
                    [
                        "retire-check", "--json", "--grace", "0", "--type", "youtube_channel_scrape", "--quiet-period",
                        quiet,
                    ], harness: h)
                let json = try JSONParser.parse(r.stdout)
                var checks: [String: Bool] = [:]
                for c in json["types"]?.arrayValue?.first?["checks"]?.arrayValue ?? [] {
                    checks[c["check"]!.stringValue!] = c["ok"]!.boolValue!
                }
                return (r.status, checks)
            }
            var (status, checks) = try await check()
            #expect(status == 0 && checks.values.allSatisfy { $0 }, "\(checks)")
            (status, checks) = try await check("1h")
            #expect(status == 1 && checks["no legacy inserts for 1h"] == false)
            let producer = try h.producer()
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'off'")
            let queued = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "q"}"#)
            (status, checks) = try await check()
            #expect(
                status == 1 && checks["mode is forward at 100 %, reverse or retired"] == false
                    && checks["no queued or in-flight rows"] == false)
            try producer.execute("DELETE FROM task_queue WHERE id = ?", [queued])
            try producer.execute("UPDATE _taskbridge_mode SET mode = 'forward'")
            (status, checks) = try await check()
            #expect(status == 0, "clean again once the stray row is gone: \(checks)")
            h.startEngine()
            let bad = try producer.insert(type: "youtube_channel_scrape", parameters: "{bad")
            #expect(try await eventually { try await h.store.quarantineList().count == 1 })
            await h.stopEngine()
            (status, checks) = try await check()
            #expect(status == 1 && checks["quarantine empty"] == false && checks["verify clean"] == false)
            _ = bad
        }
    }

    @Test func exportAndCheckDetectModification() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            _ = try await settled(h, count: 4)
            try h.producer().execute(
                """
                INSERT INTO task_queue (task_type, parameters, created_at, updated_at) VALUES ('other', CAST(X'7BC328' \
                AS TEXT), 'x', 'y')
                """
            )
            let archive = h.tm.directory.path("archive.jsonl")
            let w = try await CLIRun.run(["export", "--out", archive], harness: h)
            #expect(w.status == 0, "\(w.stderr)")
            let ok = try await CLIRun.run(["export", "--check", archive], harness: h)
            #expect(ok.status == 0 && ok.stdout.contains("task_queue 5"))
            var text = try String(contentsOfFile: archive, encoding: .utf8)
            #expect(text.contains("$text_base64"), "invalid UTF-8 is archived losslessly")
            text = text.replacingOccurrences(of: "p1", with: "p9")
            try text.write(toFile: archive, atomically: true, encoding: .utf8)
            let bad = try await CLIRun.run(["export", "--check", archive], harness: h)
            #expect(bad.status == 1 && bad.stdout.contains("SHA-256 mismatch"))
            let lines = try String(contentsOfFile: archive, encoding: .utf8).split(separator: "\n")
            try (lines.dropLast().joined(separator: "\n") + "\n").write(
                toFile: archive, atomically: true, encoding: .utf8)
            let truncated = try await CLIRun.run(["export", "--check", archive], harness: h)
            #expect(truncated.status == 1 && truncated.stdout.contains("truncated"))
        }
    }

    @Test func uninstallLeavesTheLegacySchemaAndDataAsProducersKnowThem() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("worker_queue.db")
        try LegacyFixture.a.create(at: path)
        let producer = try LegacyProducer(path: path)
        for i in 0..<5 {
            try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "u\#(i)"}"#)
        }
        try producer.execute(
            "CREATE VIEW v_task_stats AS SELECT task_type, status, COUNT(*) AS n FROM task_queue GROUP BY 1, 2")
        func snapshot() throws -> (String, String) {
            try producer.read { db in
                let schema = try Row.fetchAll(
                    db,
                    sql:
                        """
                        SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE '\\_taskbridge%' \
                        ESCAPE '\\' ORDER BY name
                        """
                )
                .map { "\($0)" }.joined(separator: "\n")
                let data =
                    try Row.fetchAll(db, sql: "SELECT * FROM task_queue ORDER BY id").map { "\($0)" }.joined(
                        separator: "\n")
                    + (try Row.fetchAll(db, sql: "SELECT * FROM sqlite_sequence ORDER BY name").map { "\($0)" }.joined(
                        separator: "\n"))
                return (schema, data)
            }
        }
        let before = try snapshot()
        let store = try LegacyQueueStore.open(
            path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false
        ).store
        try await store.install()
        try await store.setMode(taskType: "youtube_channel_scrape", mode: "off", reason: nil, host: "h", actor: "a")
        #expect(
            try producer.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '\\_taskbridge%' ESCAPE '\\'")
            } ?? 0 > 10)
        try await store.uninstall()
        let after = try snapshot()
        #expect(before.0 == after.0, "schema changed")
        #expect(before.1 == after.1, "data changed")
        #expect(
            try producer.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '\\_taskbridge%' ESCAPE '\\'")
            } == 0)
        try store.close()
    }
}
