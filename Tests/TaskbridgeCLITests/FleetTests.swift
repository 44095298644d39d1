import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// Several module queues feeding one TaskManager, through the real
/// executable (issue 14): one `run` for two queues, a table recreated and a
/// file replaced under a running bridge, SIGKILL with several queues.
@Suite(.serialized, .heavy) struct FleetTests {
    static let scrape = TypeMapping(
        legacyType: "video_scrape", name: "PrismQ.Fleet.Video.Scrape", mode: .forward, dedupe: .perRow,
        paramSchema: ["type": "object", "properties": ["video_url": ["type": "string"]], "required": ["video_url"]])

    /// The harness's TaskManager and legacy file (queue `youtube`) plus a
    /// second legacy file (queue `reddit`), both named in one bridge.conf.
    struct Fleet {
        let h: BridgeHarness
        let second: String
        let config: String
        let metricsPort: Int

        var files: [String: String] { ["youtube": h.legacyPath, "reddit": second] }

        init(_ h: BridgeHarness, types: [TypeMapping] = [FleetTests.scrape]) throws {
            self.h = h
            second = h.tm.directory.path("reddit_queue.db")
            try LegacyFixture.a.create(at: second)
            metricsPort = try FreePort.find()
            var lines = [
                "[taskmanager]", "url = \(PHPJSON.encode(.string(h.tm.baseURL)))", "request_timeout_seconds = 60",
                "[bridge]", "metrics_listen = \"127.0.0.1:\(metricsPort)\"", "poll_interval_ms = 10",
                "mirror_interval_ms = 50",
            ]
            for (name, path) in [("youtube", h.legacyPath), ("reddit", second)] {
                lines += ["[queues.\(name)]", "database = \(PHPJSON.encode(.string(path)))"]
                for t in types {
                    lines += [
                        "[queues.\(name).types.\(t.legacyType)]", "name = \(PHPJSON.encode(.string(t.name)))",
                        "mode = \"\(t.mode.rawValue)\"", "dedupe = \"\(t.dedupe.rawValue)\"",
                        "param_schema = { type = \"object\" }",
                    ]
                }
            }
            config = h.tm.directory.path("fleet.conf")
            try lines.joined(separator: "\n").write(toFile: config, atomically: true, encoding: .utf8)
        }

        func bridge() throws -> AsyncProcess {
            var env = h.cliEnvironment
            env["LOG_LEVEL"] = "info"
            return AsyncProcess(
                executable: try TaskbridgeBinary.url(), arguments: ["run", "--config", config], environment: env)
        }

        func cli(_ args: [String]) async throws -> CLIRun.Result {
            try await CLIRun.run(args, harness: h, config: config)
        }

        func get(_ path: String) async throws -> String {
            try await HTTPFetch.text("http://127.0.0.1:\(metricsPort)\(path)")
        }

        func waitUp(_ bridge: AsyncProcess) async throws {
            let up = try await eventually(timeout: .seconds(60)) {
                ((try? await self.get("/health")) ?? "").contains(#""queues""#) || !bridge.isRunning
            }
            guard up, bridge.isRunning else {
                throw HarnessError("fleet did not come up: \(bridge.stderr.suffix(3000))")
            }
        }

        func scalar(_ path: String, _ sql: String, _ args: StatementArguments = []) throws -> Int {
            let q = try observerConnection(path)
            defer { try? q.close() }
            return try q.read { db in try Int.fetchOne(db, sql: sql, arguments: args) ?? 0 }
        }
    }

    /// Inserts rows of `scrape` with these `video_url`s and waits until the
    /// ledger holds `sent` entries for `expected` rows in all.
    static func insertAndWaitSent(_ h: BridgeHarness, _ urls: [String], expected: Int) async throws {
        let producer = try h.producer()
        defer { try? producer.close() }
        for u in urls { try producer.insert(type: scrape.legacyType, parameters: #"{"video_url": "\#(u)"}"#) }
        #expect(
            try await eventually(timeout: .seconds(60)) {
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == expected
            })
    }

    /// A TaskManager worker that answers each task with what identifies its
    /// row: a row that got another row's task would show another identity.
    static func drain(_ client: TaskManagerClient, typeID: Int64) async throws -> Int {
        var n = 0
        while let task = try await client.claimTask(workerID: "fleet-worker", taskTypeID: typeID) {
            let result: JSONValue = [
                "legacy_id": task.params["_legacy_id"] ?? .null, "origin": task.params["_legacy_origin"] ?? .null,
            ]
            _ = try await client.completeTask(id: task.id, workerID: "fleet-worker", success: true, result: result)
            n += 1
        }
        return n
    }

    /// Each terminal row holds the result computed for itself: its own id and
    /// its own file's origin.
    static func expectOwnResults(_ path: String, count: Int) throws {
        let q = try observerConnection(path)
        defer { try? q.close() }
        let (origin, rows) = try q.read { db in
            (
                try String.fetchOne(db, sql: "SELECT value FROM _taskbridge_meta WHERE key = 'origin'"),
                try Row.fetchAll(db, sql: "SELECT id, status, result_data FROM task_queue ORDER BY id")
            )
        }
        #expect(rows.count == count)
        for r in rows {
            let id: Int64 = r["id"]
            #expect(r["status"] as String? == "completed", "row \(id)")
            let result = try JSONParser.parse((r["result_data"] as String?) ?? "null")
            #expect(result["legacy_id"] == .int(id), "row \(id) holds \(result)")
            #expect(result["origin"]?.stringValue == origin, "row \(id) holds another file's result: \(result)")
        }
    }

    @Test func twoQueuesInOneProcessNeverShareAPerRowTask() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let fleet = try Fleet(h)
            // A file with several queues wants --queue on per-queue commands.
            let ambiguous = try await fleet.cli(["cutover", Self.scrape.legacyType, "off", "--reason", "x"])
            #expect(ambiguous.status == 2 && ambiguous.stderr.contains("reddit, youtube"), "\(ambiguous.stderr)")
            let unknown = try await fleet.cli(["status", "--queue", "hackernews"])
            #expect(unknown.status == 2 && unknown.stderr.contains("reddit, youtube"), "\(unknown.stderr)")

            let bridge = try fleet.bridge()
            try bridge.start()
            defer { Task { await bridge.kill() } }
            try await fleet.waitUp(bridge)
            // Five rows with the same params in each queue: ten rows, ten tasks.
            for path in fleet.files.values {
                let p = try LegacyProducer(path: path)
                for _ in 0..<5 { try p.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "same"}"#) }
            }
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try fleet.files.values.map {
                        try fleet.scalar($0, "SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('sent','done')")
                    }.reduce(0, +) == 10
                }, "\(bridge.stderr.suffix(3000))")
            let typeID = try await h.typeID(Self.scrape.name)
            #expect(try await Self.drain(h.tm.client, typeID: typeID) == 10)
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try fleet.files.values.map {
                        try fleet.scalar($0, "SELECT COUNT(*) FROM task_queue WHERE status = 'completed'")
                    }.reduce(0, +) == 10
                })
            for path in fleet.files.values { try Self.expectOwnResults(path, count: 5) }

            // One listener for both: health per queue, a queue label on every metric.
            let health = try json(try await fleet.get("/health"))
            #expect(Set(health["queues"]?.objectMembers?.map(\.key) ?? []) == ["youtube", "reddit"])
            let metrics = try PrometheusText(try await fleet.get("/metrics"))
            #expect(metrics.inconsistentFamilies.isEmpty)
            #expect(metrics.samples.allSatisfy { !$0.name.hasPrefix("taskbridge_") || $0.labels["queue"] != nil })
            for q in ["youtube", "reddit"] {
                #expect(metrics.sum("taskbridge_forwarded_total", where: ["queue": q]) == 5)
            }
            let served = try json(try await fleet.get("/status.json"))
            // Queues in name order (TOML tables have no order of their own).
            #expect(served["queues"]?.arrayValue?.compactMap { $0["queue"]?.stringValue } == ["reddit", "youtube"])
            #expect(served["totals"]?["forwarded"] == 10)
            let overview = try json(try await fleet.get("/fleet.json"))
            #expect(overview["queues"]?.arrayValue?.count == 2)
            let page = try json(try await fleet.get("/dashboard.json?queue=reddit"))
            #expect(page["status"]?["queue"] == "reddit")

            let status = try await fleet.cli(["status", "--json"])
            #expect(status.status == 0, "\(status.stderr)")
            #expect(try json(status.stdout)["totals"]?["forwarded"] == 10)
            let verify = try await fleet.cli(["verify", "--grace", "0"])
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            let one = try await fleet.cli([
                "cutover", Self.scrape.legacyType, "off", "--queue", "reddit", "--reason", "r",
            ])
            #expect(one.status == 0, "\(one.stderr)")
            #expect(
                try fleet.scalar(fleet.second, "SELECT COUNT(*) FROM _taskbridge_mode WHERE mode = 'off'") == 1
                    && fleet.scalar(h.legacyPath, "SELECT COUNT(*) FROM _taskbridge_mode WHERE mode = 'off'") == 0)
        }
    }

    /// PrismQ's `QueueDatabase(path)` drops and recreates `task_queue`: ids
    /// restart at 1. Rows with the ids and params of finished rows are new
    /// rows: they get new tasks, never the old results.
    @Test func recreatedTableGivesRepeatedIdsTheirOwnTasks() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let bridgeProcess = try BridgeProcess(harness: h, metrics: true)
            try bridgeProcess.start()
            defer { Task { await bridgeProcess.kill() } }
            _ = try await bridgeProcess.waitForHealth()
            try await Self.insertAndWaitSent(h, (0..<3).map { "v\($0)" }, expected: 3)
            let producer = try h.producer()
            let typeID = try await h.typeID(Self.scrape.name)
            #expect(try await Self.drain(h.tm.client, typeID: typeID) == 3)
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 3
                })
            let oldTasks = Set(try h.strings("SELECT CAST(tm_task_id AS TEXT) FROM _taskbridge_ledger"))

            // QueueDatabase(path): the table and its triggers go, ids restart.
            try producer.execute("DROP TABLE task_queue")
            try producer.execute(LegacySchema.variantADDL())
            for i in 0..<3 {
                try producer.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "v\#(i)"}"#)
            }
            // Rows that slipped past the missing trigger are claimed as backlog;
            // every new row ends with a task of its own, none of the old ones.
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 3
                }, "\(bridgeProcess.stderrText.suffix(3000))")
            let newTasks = Set(try h.strings("SELECT CAST(tm_task_id AS TEXT) FROM _taskbridge_ledger"))
            #expect(
                newTasks.count == 3 && newTasks.isDisjoint(with: oldTasks), "\(bridgeProcess.stderrText.suffix(4000))")
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 0)
            #expect(
                try h.scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\\_taskbridge%' "
                        + "ESCAPE '\\'")
                    == 4)
            #expect(try await Self.drain(h.tm.client, typeID: typeID) == 3)
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 3
                })
            try Self.expectOwnResults(h.legacyPath, count: 3)
            #expect(bridgeProcess.stderrText.contains("new ledger generation"))
        }
    }

    /// A row a legacy worker executed while the insert trigger was missing
    /// (the bridge stopped between the recreate and its repair) is a verify
    /// finding of its own and is counted in status.
    @Test func rowExecutedByALegacyWorkerWhileForwardIsAFinding() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let bridgeProcess = try BridgeProcess(harness: h, metrics: true)
            try bridgeProcess.start()
            defer { Task { await bridgeProcess.kill() } }
            _ = try await bridgeProcess.waitForHealth()
            // The type entered forward when the bridge seeded its mode; legacy
            // timestamps have whole seconds, so the row comes a second later.
            let seeded = Date()
            _ = try await eventually(timeout: .seconds(10)) { Date().timeIntervalSince(seeded) > 1.5 }
            bridgeProcess.child.signal(SIGSTOP)
            let producer = try h.producer()
            try producer.execute("DROP TABLE task_queue")
            try producer.execute(LegacySchema.variantADDL())
            let id = try producer.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "slipped"}"#)
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-1")
            let claimed = try #require(try worker.claim())
            #expect(claimed.id == id)
            try worker.complete(claimed.id)
            bridgeProcess.child.signal(SIGCONT)
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_taskbridge_ai'") == 1
                })
            let verify = try await CLIRun.run(
                ["verify", "--grace", "0", "--json"], harness: h, config: bridgeProcess.configPath)
            #expect(verify.status == 1, "\(verify.stdout)\(verify.stderr)")
            let findings = try json(verify.stdout)["findings"]?.arrayValue ?? []
            #expect(findings.contains { $0["class"] == "executed_by_legacy" && $0["legacy_id"] == .int(id) })
            let status = try json(
                try await CLIRun.run(["status", "--json"], harness: h, config: bridgeProcess.configPath).stdout)
            #expect(status["types"]?.arrayValue?.first?["executed_by_legacy"] == 1)
        }
    }

    /// `mv backup.db worker_queue.db` under a running bridge: it notices,
    /// reopens, says so once, forwards what is inserted afterwards as a new
    /// generation, and verify shows the rows the restore dropped.
    @Test func fileReplacedUnderARunningBridge() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let bridgeProcess = try BridgeProcess(harness: h, metrics: true)
            try bridgeProcess.start()
            defer { Task { await bridgeProcess.kill() } }
            _ = try await bridgeProcess.waitForHealth()
            try await Self.insertAndWaitSent(h, ["b0", "b1"], expected: 2)
            let producer = try h.producer()
            // The operator's copy, then three more rows the copy will not have.
            let backup = h.tm.directory.path("backup.db")
            let source = try observerConnection(h.legacyPath)
            let copy = try DatabaseQueue(path: backup)
            try source.backup(to: copy)
            try copy.close()
            try source.close()
            for i in 0..<3 {
                try producer.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "lost\#(i)"}"#)
            }
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 5
                })
            // The README's restore: producers stop, the copy is put back, and
            // the replaced file's WAL and index go with it (they belong to the
            // old file: a new connection would read its pages into the copy).
            try producer.close()
            #expect(rename(backup, h.legacyPath) == 0)
            unlink(h.legacyPath + "-wal")
            unlink(h.legacyPath + "-shm")
            let after = try h.producer()
            var ids: [Int64] = []
            for i in 0..<30 {
                ids.append(try after.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "new\#(i)"}"#))
            }
            #expect(
                try await eventually(timeout: .seconds(90)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 32
                }, "\(bridgeProcess.stderrText.suffix(3000))")
            let log = bridgeProcess.stderrText
            #expect(log.components(separatedBy: "the legacy file was replaced").count == 2, "warned once")
            // Ids 3 to 5 came again: their tasks are new, not the dropped rows'.
            #expect(ids.first == 3)
            let verify = try await CLIRun.run(
                ["verify", "--grace", "0", "--json"], harness: h, config: bridgeProcess.configPath)
            let findings = try json(verify.stdout)["findings"]?.arrayValue ?? []
            let dropped = findings.filter {
                $0["class"] == "missing_in_sqlite" && ($0["detail"]?.stringValue ?? "").contains("dropped by a restore")
            }
            #expect(dropped.count == 3, "\(verify.stdout)\(bridgeProcess.stderrText.suffix(3000))")
            #expect(verify.status == 1)
            let metrics = try PrometheusText(try await bridgeProcess.metrics())
            #expect(metrics.sum("taskbridge_legacy_file_replaced_total") == 1)
        }
    }

    /// A restore that puts the copy back but leaves the replaced file's WAL
    /// and index beside it: the bridge opens nothing on the copy (a connection
    /// would read it through the old WAL), says so once, and reopens it as
    /// soon as they are removed.
    @Test func aRestoreThatLeavesTheOldWALBesideTheCopyIsWaitedOut() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let bridgeProcess = try BridgeProcess(harness: h, metrics: true)
            try bridgeProcess.start()
            defer { Task { await bridgeProcess.kill() } }
            _ = try await bridgeProcess.waitForHealth()
            try await Self.insertAndWaitSent(h, ["b0", "b1"], expected: 2)
            let backup = h.tm.directory.path("backup.db")
            let source = try observerConnection(h.legacyPath)
            let copy = try DatabaseQueue(path: backup)
            try source.backup(to: copy)
            try copy.close()
            try source.close()
            try await Self.insertAndWaitSent(h, ["lost"], expected: 3)
            #expect(rename(backup, h.legacyPath) == 0)
            let waiting = "the bridge waits for them to be removed"
            #expect(
                try await eventually(timeout: .seconds(60)) { bridgeProcess.stderrText.contains(waiting) },
                "\(bridgeProcess.stderrText.suffix(3000))")
            // Looked at again and again while they stay, warned about once.
            let seen = try PrometheusText(try await bridgeProcess.metrics()).sum("taskbridge_legacy_wakeups_total")
            _ = try await eventually(timeout: .seconds(30)) {
                try PrometheusText(try await bridgeProcess.metrics()).sum("taskbridge_legacy_wakeups_total") > seen + 5
            }
            #expect(bridgeProcess.stderrText.components(separatedBy: waiting).count == 2, "warned once")
            #expect(try PrometheusText(try await bridgeProcess.metrics()).sum("taskbridge_legacy_file_replaced_total") == 0)
            unlink(h.legacyPath + "-wal")
            unlink(h.legacyPath + "-shm")
            let after = try h.producer()
            defer { try? after.close() }
            // Row 3 of the replaced file is not in the copy: its id comes again.
            #expect(try after.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "new"}"#) == 3)
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 3
                }, "\(bridgeProcess.stderrText.suffix(3000))")
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue") == 3)
            let check = try observerConnection(h.legacyPath)
            #expect(try await check.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
            try check.close()
            let metrics = try PrometheusText(try await bridgeProcess.metrics())
            #expect(metrics.sum("taskbridge_legacy_file_replaced_total") == 1)
        }
    }

    /// SIGKILL while rows flow into two queues: after a restart every row of
    /// both has exactly one task of its own.
    @Test func sigkillWithSeveralQueuesLosesAndDoublesNothing() async throws {
        try await BridgeHarness.with(types: [Self.scrape], startEngine: false) { h in
            let fleet = try Fleet(h)
            var rows = 0
            for round in 0..<3 {
                let bridge = try fleet.bridge()
                try bridge.start()
                try await fleet.waitUp(bridge)
                for path in fleet.files.values {
                    let p = try LegacyProducer(path: path)
                    for i in 0..<20 {
                        try p.insert(type: Self.scrape.legacyType, parameters: #"{"video_url": "r\#(round)-\#(i)"}"#)
                    }
                    try p.close()
                }
                rows += 20
                // Killed while the rows are being captured and sent.
                bridge.signal(SIGKILL)
                _ = await bridge.wait()
            }
            let bridge = try fleet.bridge()
            try bridge.start()
            defer { Task { await bridge.kill() } }
            try await fleet.waitUp(bridge)
            #expect(
                try await eventually(timeout: .seconds(90)) {
                    try fleet.files.values.allSatisfy {
                        try fleet.scalar($0, "SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == rows
                    }
                }, "\(bridge.stderr.suffix(3000))")
            let tasks = try await h.tm.client.listTasks(type: Self.scrape.name, limit: 1000)
            #expect(tasks.count == 2 * rows, "one task per row of both queues")
            for path in fleet.files.values {
                #expect(try fleet.scalar(path, "SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_ledger") == rows)
            }
        }
    }
}
