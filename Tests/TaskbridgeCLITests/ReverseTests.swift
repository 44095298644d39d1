import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// `mode = "reverse"`: TaskManager producers, PrismQ legacy workers, the real
/// `taskbridge run` in between, through crashes and expired leases.
@Suite(.serialized, .heavy) struct ReverseTests {
    static let reverse = TypeMapping(
        legacyType: "youtube_comment_scrape", name: "PrismQ.YouTube.Comment.Scrape", mode: .reverse)

    /// Legacy workers with the unchanged claim SQL (any type); a row whose
    /// params hold `"fail": true` fails with an error naming its task.
    static func legacyWorkers(_ h: BridgeHarness, log: ExecutionLog, until stop: Deadline) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 {
                group.addTask {
                    let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-\(w)", strategy: "FIFO")
                    defer { try? worker.close() }
                    try await worker.run(until: stop, log: log) { c in
                        let params = try? JSONParser.parse(c.parameters ?? "")
                        return params?["fail"]?.boolValue == true
                            ? (false, nil, "boom \(c.id)") : (true, #"{"rows": \#(c.id), "ok": true}"#, nil)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Every task of the type, by id, read one by one (the list has no params or results).
    static func tasks(_ h: BridgeHarness, _ ids: [Int64]) async throws -> [Int64: TaskInfo] {
        var out: [Int64: TaskInfo] = [:]
        for id in ids { out[id] = try await h.tm.client.getTask(id: id) }
        return out
    }

    static func terminalCount(_ h: BridgeHarness) async throws -> Int {
        let done = try await h.tm.client.listTasks(statuses: ["completed"], type: reverse.name, limit: 1000)
        let failed = try await h.tm.client.listTasks(statuses: ["failed"], type: reverse.name, limit: 1000)
        return done.count + failed.count
    }

    /// Completion calls the proxy saw, for any task.
    static func completeCalls(_ proxy: FaultProxy) -> Int {
        proxy.seen().filter { $0.key.hasSuffix("/complete") }.values.reduce(0, +)
    }

    /// `n` tasks with distinct params from `first` on (identical params would be one task: the API dedupes).
    static func create(
        _ h: BridgeHarness, _ n: Int, first: Int = 0, fail: (Int) -> Bool = { _ in false }
    ) async throws -> [Int64] {
        var ids: [Int64] = []
        for i in first..<first + n {
            let params: JSONValue = fail(i) ? ["comment": .int(Int64(i)), "fail": true] : ["comment": .int(Int64(i))]
            ids.append(try await h.tm.client.createTask(type: reverse.name, params: params).id)
        }
        return ids
    }

    @Test func fiveHundredAPITasksRunOnceOnLegacyWorkers() async throws {
        try await BridgeHarness.with(
            types: [Self.reverse], startEngine: false, server: { $0.maxAttempts = 1 }
        ) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            _ = try await h.typeID(Self.reverse.name)
            let ids = try await Self.create(h, 500, fail: { $0 % 10 == 3 })
            let log = ExecutionLog()
            // Until the test ends (cancelled): sized by rows, not by time.
            let stop = Deadline(seconds: 3600)
            let workers = Task { try await Self.legacyWorkers(h, log: log, until: stop) }
            defer { workers.cancel() }
            #expect(
                try await eventually(timeout: .seconds(90), interval: .milliseconds(100)) {
                    try await Self.terminalCount(h) == 500
                }, "\(bridge.stderrText.suffix(2000))")
            let tasks = try await Self.tasks(h, ids)
            // One row per task, executed once, its outcome in TaskManager.
            #expect(
                try h.scalar("SELECT COUNT(*) FROM task_queue WHERE task_type = ?", [Self.reverse.legacyType]) == 500)
            #expect(try h.scalar("SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_reverse") == 500)
            let executions = await log.legacy
            #expect(executions.count == 500 && executions.values.allSatisfy { $0 == 1 })
            for (i, id) in ids.enumerated() {
                let t = try #require(tasks[id])
                let row = try #require(
                    try h.scalarInt("SELECT legacy_id FROM _taskbridge_reverse WHERE tm_task_id = ?", [id]))
                if i % 10 == 3 {
                    #expect(t.rawStatus == "failed" && t.errorMessage == "boom \(row)", "task \(id): \(t)")
                } else {
                    #expect(
                        t.rawStatus == "completed" && t.result == ["rows": .int(row), "ok": true], "task \(id): \(t)")
                }
                #expect(t.attempts == 1)
            }
            // The bridge's own inserts created no forward work.
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger") == 0)
            let metrics = try await bridge.expectServing("reverse")
            #expect(metrics.sum("taskbridge_captured_total") == 0)
            #expect(metrics.sum("taskbridge_reverse_inserted_total", where: ["type": Self.reverse.legacyType]) == 500)
            // The row looks like a Python producer's.
            let text = try h.scalarText("SELECT parameters FROM task_queue WHERE id = 1")
            #expect(text == #"{"comment": 0}"#)
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE priority = 5") == 500)

            let status = try json(try await CLIRun.run(["status", "--json"], harness: h).stdout)
            let row = status["types"]?.arrayValue?.first { $0["task_type"]?.stringValue == Self.reverse.legacyType }
            #expect(row?["reverse_done"]?.intValue == 500 && row?["reverse_conflicts"]?.intValue == 0)
            let verify = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(verify.status == 0, "\(verify.stdout.suffix(1500)) \(verify.stderr)")

            // Verify compares this direction too: a row edited, a row deleted.
            let producer = try h.producer()
            try producer.execute(#"UPDATE task_queue SET parameters = '{"comment": -1}' WHERE id = 2"#)
            try producer.execute("DELETE FROM task_queue WHERE id = 3")
            let broken = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(broken.status == 1, "\(broken.stdout.suffix(1500))")
            let findings = try json(broken.stdout)["findings"]?.arrayValue ?? []
            let classes = Set(findings.compactMap { $0["class"]?.stringValue })
            #expect(classes == ["payload_diverged", "missing_in_sqlite"], "\(classes)")
        }
    }

    /// SIGKILL between the claim (TaskManager handed the task over) and the
    /// insert; then between the legacy completion and the API call, once
    /// after the server took it and once before.
    @Test func crashesBetweenTheStepsNeverLoseOrDoubleATask() async throws {
        var startsOff = Self.reverse
        startsOff.mode = .off
        try await BridgeHarness.with(
            types: [startsOff], withProxy: true, startEngine: false, server: { $0.maxAttempts = 1 }
        ) { h in
            let proxy = try #require(h.proxy)
            let b1 = try BridgeProcess(harness: h, metrics: true)
            try b1.start()
            defer { Task { await b1.kill() } }
            _ = try await b1.waitForHealth()
            _ = try await h.typeID(Self.reverse.name)

            // Tasks wait while the type is off; the claim that hands one over loses its answer.
            let ids = try await Self.create(h, 3)
            proxy.set(.matching("POST /api/tasks/claim", .swallowResponse))
            let on = try await CLIRun.run(["cutover", Self.reverse.legacyType, "reverse", "--reason", "t"], harness: h)
            #expect(on.status == 0)
            #expect(try await eventually(timeout: .seconds(20)) { proxy.count("POST /api/tasks/claim") >= 1 })
            await b1.kill()
            // The proxy passed the claim on before swallowing its answer: the server handed one task over.
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    let held = try await h.tm.client.listTasks(statuses: ["claimed"], type: Self.reverse.name)
                    return held.count == 1 && held.first?.claimedBy == "taskbridge"
                })
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue") == 0, "and the bridge died before its insert")

            proxy.set(.pass)
            let b2 = try BridgeProcess(harness: h, metrics: true)
            try b2.start()
            defer { Task { await b2.kill() } }
            #expect(
                try await eventually(timeout: .seconds(30)) { try h.scalar("SELECT COUNT(*) FROM task_queue") == 3 },
                "\(b2.stderrText.suffix(2000))")
            #expect(b2.stderrText.contains("had no legacy row; inserted it"))
            #expect(try h.scalar("SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_reverse") == 3)

            // The server takes the completion, the bridge never hears, dies.
            proxy.set(.matching("/complete", .swallowResponse))
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-0", strategy: "FIFO")
            defer { try? worker.close() }
            let first = try #require(try worker.claim())
            try worker.complete(first.id, data: #"{"n": 1}"#)
            #expect(try await eventually(timeout: .seconds(20)) { Self.completeCalls(proxy) >= 1 })
            await b2.kill()
            // The calls are refused before the server: the bridge dies again.
            proxy.set(.matching("/complete", .status(503, body: "down")))
            let b3 = try BridgeProcess(harness: h, metrics: true)
            try b3.start()
            defer { Task { await b3.kill() } }
            let second = try #require(try worker.claim())
            try worker.complete(second.id, success: false, data: nil, error: "legacy said no")
            let before = Self.completeCalls(proxy)
            #expect(try await eventually(timeout: .seconds(20)) { Self.completeCalls(proxy) >= before + 2 })
            await b3.kill()

            proxy.set(.pass)
            let b4 = try BridgeProcess(harness: h, metrics: true)
            try b4.start()
            defer { Task { await b4.kill() } }
            let third = try #require(try worker.claim())
            try worker.complete(third.id, data: #"{"n": 3}"#)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_reverse WHERE state = 'done'") == 3
                }, "\(b4.stderrText.suffix(2000))")
            let tasks = try await Self.tasks(h, ids)
            let byRow = Dictionary(
                uniqueKeysWithValues: try ids.map { id in
                    (try h.scalarInt("SELECT legacy_id FROM _taskbridge_reverse WHERE tm_task_id = ?", [id])!, id)
                })
            #expect(tasks[byRow[first.id]!]?.rawStatus == "completed" && tasks[byRow[first.id]!]?.result == ["n": 1])
            #expect(
                tasks[byRow[second.id]!]?.rawStatus == "failed"
                    && tasks[byRow[second.id]!]?.errorMessage == "legacy said no")
            #expect(tasks[byRow[third.id]!]?.rawStatus == "completed")
            #expect(tasks.values.allSatisfy { $0.attempts == 1 }, "each task claimed once")
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_reverse WHERE state = 'conflict'") == 0)
        }
    }

    /// A cutover to `off` stops claims, not the outcomes already owed: a
    /// completion TaskManager refused for now is retried until it lands, though
    /// no type is left in reverse (the loop once went idle on such an entry).
    @Test func anOutcomeOwedAtACutoverToOffStillGoesOut() async throws {
        try await BridgeHarness.with(types: [Self.reverse], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            // The bridge registers the type once it runs; tasks can be created after that.
            _ = try await h.typeID(Self.reverse.name)
            let ids = try await Self.create(h, 1)
            #expect(
                try await eventually(timeout: .seconds(20)) { try h.scalar("SELECT COUNT(*) FROM task_queue") == 1 })
            proxy.set(.matching("/complete", .status(503, body: "down")))
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-0")
            defer { try? worker.close() }
            let row = try #require(try worker.claim())
            try worker.complete(row.id, data: #"{"owed": true}"#)
            #expect(try await eventually(timeout: .seconds(20)) { Self.completeCalls(proxy) >= 1 })
            let off = try await CLIRun.run(
                ["cutover", Self.reverse.legacyType, "off", "--reason", "pause claims"], harness: h)
            #expect(off.status == 0, "\(off.stderr)")
            // Retries go on while TaskManager refuses; the bridge takes up `off` meanwhile.
            let before = Self.completeCalls(proxy)
            #expect(
                try await eventually(timeout: .seconds(30)) { Self.completeCalls(proxy) >= before + 3 },
                "\(bridge.stderrText.suffix(2000))")
            proxy.set(.pass)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try await h.tm.client.getTask(id: ids[0]).rawStatus == "completed"
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(try await h.tm.client.getTask(id: ids[0]).result == ["owed": true])
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_reverse WHERE state = 'done'") == 1
                })
        }
    }

    /// A lease that expires while its row runs: the bridge claims the task
    /// again, recognises it and inserts nothing; the completion still lands.
    /// A TaskManager worker that takes an expired task makes the bridge's
    /// completion a 403: counted, kept as a conflict, never retried.
    @Test func anExpiredLeaseIsRecognisedAndAStolenTaskIsAConflict() async throws {
        try await BridgeHarness.with(types: [Self.reverse], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            let typeID = try await h.typeID(Self.reverse.name)
            let ids = try await Self.create(h, 1)
            #expect(
                try await eventually(timeout: .seconds(20)) { try h.scalar("SELECT COUNT(*) FROM task_queue") == 1 })
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-0")
            defer { try? worker.close() }
            let running = try #require(try worker.claim())
            h.tm.server.configuration.clock.advance(by: 301)
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    (try? PrometheusText(try await bridge.metrics()).sum("taskbridge_reverse_recognised_total")) ?? 0
                        >= 1
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue") == 1, "no second row")
            try worker.complete(running.id, data: #"{"late": true}"#)
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try await h.tm.client.getTask(id: ids[0]).rawStatus == "completed"
                })
            #expect(try await h.tm.client.getTask(id: ids[0]).result == ["late": true])

            // Stolen: the bridge stops claiming, the lease runs out, an API worker takes the task.
            let stolen = try await Self.create(h, 1, first: 1)
            #expect(
                try await eventually(timeout: .seconds(20)) { try h.scalar("SELECT COUNT(*) FROM task_queue") == 2 })
            let off = try await CLIRun.run(
                ["cutover", Self.reverse.legacyType, "off", "--reason", "pause claims"], harness: h)
            #expect(off.status == 0, "\(off.stderr)")
            let row = try #require(try worker.claim())
            // The running bridge sees `off` within a poll; until then it may claim the expired task
            // again itself (recognised, nothing inserted). Each try expires whoever holds the lease.
            let thief = try await eventually(timeout: .seconds(20), interval: .milliseconds(100)) {
                () async throws -> Bool in
                h.tm.server.configuration.clock.advance(by: 301)
                return try await h.tm.client.claimTask(workerID: "api-thief", taskTypeID: typeID)?.id == stolen[0]
            }
            #expect(thief, "the expired task goes to the API worker once the bridge stopped claiming")
            try worker.complete(row.id)
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_reverse WHERE state = 'conflict'") == 1
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(try h.scalar("SELECT attempts FROM _taskbridge_reverse WHERE state = 'conflict'") == 1)
            let metrics = try await bridge.expectServing("conflict")
            #expect(metrics.sum("taskbridge_reverse_conflicts_total", where: ["reason": "reclaimed"]) == 1)
            #expect(bridge.stderrText.contains("reverse completion refused for good"))
            let status = try json(try await CLIRun.run(["status", "--json"], harness: h).stdout)
            let typeRow = status["types"]?.arrayValue?.first {
                $0["task_type"]?.stringValue == Self.reverse.legacyType
            }
            #expect(typeRow?["reverse_conflicts"]?.intValue == 1)
            let verify = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(
                verify.status == 1 && verify.stdout.contains("refused its outcome"), "\(verify.stdout.suffix(1500))")
        }
    }
}
