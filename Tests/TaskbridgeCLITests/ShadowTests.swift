import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// The shadow stage (issue 16) through the real executable: PrismQ's legacy
/// workers (claim SQL unchanged, any type) keep executing every row and
/// TaskManager workers execute the shadow copies; the bridge compares.
@Suite(.serialized, .heavy) struct ShadowTests {
    static func mapping(timeout: Double = 3_600) -> TypeMapping {
        var m = TypeMapping(
            legacyType: "hn_story_score", name: "PrismQ.HackerNews.Story.Score", mode: .off, dedupe: .collapse)
        m.shadowIgnore = ["fetched_at"]
        m.shadowTimeoutSeconds = timeout
        return m
    }

    /// `{"n": 7}` -> 7.
    static func n(_ params: JSONValue) -> Int64 { params["n"]?.intValue ?? -1 }

    /// The legacy worker's result: a score, and a timestamp that differs on every run.
    static func legacyResult(_ parameters: String?) -> String {
        let n = parameters.flatMap { try? JSONParser.parse($0) }.map(Self.n) ?? -1
        return #"{"n": \#(n), "score": \#(n * 2), "fetched_at": "legacy \#(Date().timeIntervalSince1970)"}"#
    }

    /// The TaskManager worker's: the same, except one score in four (n divisible by 4), and its own timestamp.
    static func taskManagerResult(_ task: ClaimedTask) -> JSONValue {
        let n = Self.n(task.params)
        return [
            "fetched_at": .string("tm \(Date().timeIntervalSince1970)"), "score": .int(n * 2 + (n % 4 == 0 ? 1 : 0)),
            "n": .double(Double(n)),
        ]
    }

    static func legacyWorkers(_ h: BridgeHarness, log: ExecutionLog, stop: Deadline) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 {
                group.addTask {
                    let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-\(w)")
                    defer { try? worker.close() }
                    try await worker.run(until: stop, log: log) { c in (true, Self.legacyResult(c.parameters), nil) }
                }
            }
            try await group.waitForAll()
        }
    }

    static func report(_ h: BridgeHarness, _ extra: [String] = []) async throws -> (status: Int32, json: JSONValue) {
        let r = try await CLIRun.run(["shadow", "report", "--json"] + extra, harness: h)
        return (r.status, try json(r.stdout))
    }

    @Test func resultsAreComparedFieldByFieldAndGateTheCutover() async throws {
        let m = Self.mapping()
        try await BridgeHarness.with(types: [m], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            let cut = try await CLIRun.run(["cutover", m.legacyType, "shadow", "--reason", "compare"], harness: h)
            #expect(cut.status == 0 && cut.stdout.contains("off -> shadow"), "\(cut.stdout) \(cut.stderr)")
            let log = ExecutionLog()
            let stop = Deadline(seconds: 3600)
            let legacy = Task { try await Self.legacyWorkers(h, log: log, stop: stop) }
            defer { legacy.cancel() }
            let typeID = try await h.typeID(m.name)
            let api = Task {
                try await APIWorker(
                    client: h.tm.client, workerID: "api-0", typeIDs: [typeID], compute: Self.taskManagerResult
                ).run(until: stop, log: log)
            }
            defer { api.cancel() }

            // 400 rows: n = 0..<400, so n divisible by 4 is exactly 100 of them.
            let producer = try h.producer()
            for chunk in stride(from: 0, to: 400, by: 100) {
                try producer.insertBatch(type: m.legacyType, parameters: (chunk..<chunk + 100).map { #"{"n": \#($0)}"# })
            }
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'compared'") == 400
                }, "\(bridge.stderrText.suffix(2000))")

            // Legacy workers executed every row once, with the legacy result in the row;
            // the bridge never claimed one, and each copy ran once in TaskManager.
            #expect(await log.legacy.count == 400)
            #expect(await log.legacyDoubles == 0)
            #expect(await log.api.count == 400)
            #expect(await log.apiDoubles == 0)
            #expect(
                try h.scalar(
                    """
                    SELECT COUNT(*) FROM task_queue WHERE status = 'completed' AND claimed_by LIKE 'legacy-%'
                        AND result_data LIKE '%"fetched_at": "legacy %'
                    """) == 400)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger") == 0)

            let (status, report) = try await Self.report(h)
            let t = report["types"]?[m.legacyType]
            #expect(t?["compared"]?.intValue == 400 && t?["matched"]?.intValue == 300, "\(report)")
            #expect(t?["mismatched"]?.intValue == 100 && t?["pending"]?.intValue == 0 && t?["expired"]?.intValue == 0)
            let fields = t?["fields"]?.arrayValue ?? []
            #expect(fields.count == 1 && fields.first?["path"] == "score" && fields.first?["mismatched"] == 100)
            // 75 % is below the default gate (99 % of the last 100): exit 1.
            #expect(status == 1)
            let text = try await CLIRun.run(["shadow", "report", "--examples", "2"], harness: h)
            #expect(text.stdout.contains("score: 100") && text.stdout.contains("matched 300"), "\(text.stdout)")

            // Copies are neither missing nor extra for verify.
            let verify = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(verify.status == 0, "\(verify.stdout.suffix(1500)) \(verify.stderr)")

            let refused = try await CLIRun.run(["cutover", m.legacyType, "forward", "--reason", "go"], harness: h)
            #expect(refused.status != 0)
            #expect((refused.stdout + refused.stderr).contains("of the last 100 comparisons matched"))
            let forced = try await CLIRun.run(
                ["cutover", m.legacyType, "forward", "--force", "--reason", "differences understood"], harness: h)
            #expect(forced.status == 0 && forced.stdout.contains("shadow -> forward"), "\(forced.stderr)")
            #expect(
                try h.scalarText("SELECT action FROM _taskbridge_audit ORDER BY id DESC LIMIT 1") == "cutover-forced")

            let metrics = try await bridge.expectServing("shadow")
            #expect(metrics.sum("taskbridge_shadow_total", where: ["outcome": "matched"]) == 300)
            #expect(metrics.sum("taskbridge_shadow_total", where: ["outcome": "value"]) == 100)
            #expect(metrics.sum("taskbridge_shadow_total", where: ["outcome": "created"]) == 400)
            let statusJSON = try json(try await CLIRun.run(["status", "--json"], harness: h).stdout)
            let row = statusJSON["types"]?.arrayValue?.first { $0["task_type"]?.stringValue == m.legacyType }
            #expect(row?["shadow"]?["compared"]?.intValue == 400)
        }
    }

    /// A 10 % sample by id, and no TaskManager worker: the copies wait, then
    /// expire (never a mismatch) and are taken out of TaskManager's queue.
    @Test func aSampleWithoutTaskManagerWorkersExpires() async throws {
        var m = Self.mapping(timeout: 3)
        m.dedupe = .perRow
        try await BridgeHarness.with(types: [m], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            let cut = try await CLIRun.run(
                ["cutover", m.legacyType, "shadow", "--percent", "10", "--reason", "sample"], harness: h)
            #expect(cut.status == 0 && cut.stdout.contains("shadow 10%"), "\(cut.stdout) \(cut.stderr)")
            let log = ExecutionLog()
            let legacy = Task { try await Self.legacyWorkers(h, log: log, stop: Deadline(seconds: 3600)) }
            defer { legacy.cancel() }
            // 100 consecutive ids hold exactly 10 below 10 by (id * 37) % 100 (37 is prime to 100).
            try h.producer().insertBatch(type: m.legacyType, parameters: (0..<100).map { #"{"n": \#($0)}"# })
            var pendingSeen = 0
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    pendingSeen = max(
                        pendingSeen, try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'sent'"))
                    return try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'expired'") == 10
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(pendingSeen > 0, "copies were pending before they expired")
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow") == 10)
            let (_, report) = try await Self.report(h)
            let t = report["types"]?[m.legacyType]
            #expect(t?["expired"]?.intValue == 10 && t?["mismatched"]?.intValue == 0 && t?["compared"]?.intValue == 0)
            // Taken out of TaskManager's queue: no copy stays pending.
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try await h.tm.client.listTasks(statuses: ["pending"], type: m.name).isEmpty
                })
            #expect(await log.legacy.count == 100)
            #expect(await log.legacyDoubles == 0)
        }
    }

    /// SIGKILLs mid-shadow: every comparison is recorded once, and no row
    /// gets a second copy (the copy's params name the row, so a re-send
    /// finds its task).
    @Test func killsLoseNoComparisonAndMakeNoSecondCopy() async throws {
        let m = Self.mapping()
        try await BridgeHarness.with(types: [m], startEngine: false) { h in
            var bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            _ = try await bridge.waitForHealth()
            let cut = try await CLIRun.run(["cutover", m.legacyType, "shadow", "--reason", "compare"], harness: h)
            #expect(cut.status == 0)
            let log = ExecutionLog()
            let stop = Deadline(seconds: 3600)
            let legacy = Task { try await Self.legacyWorkers(h, log: log, stop: stop) }
            defer { legacy.cancel() }
            let typeID = try await h.typeID(m.name)
            let api = Task {
                try await APIWorker(
                    client: h.tm.client, workerID: "api-0", typeIDs: [typeID], compute: Self.taskManagerResult
                ).run(until: stop, log: log)
            }
            defer { api.cancel() }
            let producer = try h.producer()
            var kills = 0
            for chunk in stride(from: 0, to: 200, by: 50) {
                try producer.insertBatch(type: m.legacyType, parameters: (chunk..<chunk + 50).map { #"{"n": \#($0)}"# })
                // Killed once copies of this chunk are being made and compared, then started again.
                _ = try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state <> 'intent'") > chunk
                }
                await bridge.kill()
                kills += 1
                bridge = try BridgeProcess(harness: h, metrics: true)
                try bridge.start()
                _ = try await bridge.waitForHealth()
            }
            defer { Task { [bridge] in await bridge.kill() } }
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'compared'") == 200
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(kills == 4)
            // One task per row in TaskManager, each executed once.
            let tasks = try await h.tm.client.listTasks(type: m.name, limit: 1000)
            #expect(tasks.count == 200)
            #expect(await log.api.count == 200)
            #expect(await log.apiDoubles == 0)
            #expect(await log.legacyDoubles == 0)
            let (_, report) = try await Self.report(h)
            // n divisible by 4 among 0..<200: 50.
            #expect(report["types"]?[m.legacyType]?["matched"]?.intValue == 150)
            #expect(report["types"]?[m.legacyType]?["mismatched"]?.intValue == 50)
        }
    }

    /// Behind the PHP server's ways (string ids, a 500 for an empty claim,
    /// `Connection: close`), the same comparisons come out.
    @Test func theRealServersWaysChangeNothing() async throws {
        let m = Self.mapping()
        try await BridgeHarness.with(types: [m], startEngine: false) { h in
            let proxy = FaultProxy(upstream: h.tm.baseURL)
            try await proxy.start()
            proxy.set(.php)
            let bridge = try BridgeProcess(harness: h, metrics: true, url: proxy.baseURL)
            try bridge.start()
            defer { Task { await bridge.kill(); await proxy.stop() } }
            _ = try await bridge.waitForHealth()
            #expect(try await CLIRun.run(["cutover", m.legacyType, "shadow", "--reason", "php"], harness: h).status == 0)
            let log = ExecutionLog()
            let stop = Deadline(seconds: 3600)
            let legacy = Task { try await Self.legacyWorkers(h, log: log, stop: stop) }
            defer { legacy.cancel() }
            let typeID = try await h.typeID(m.name)
            let api = Task {
                try await APIWorker(
                    client: h.tm.client, workerID: "api-0", typeIDs: [typeID], compute: Self.taskManagerResult
                ).run(until: stop, log: log)
            }
            defer { api.cancel() }
            try h.producer().insertBatch(type: m.legacyType, parameters: (0..<40).map { #"{"n": \#($0)}"# })
            #expect(
                try await eventually(timeout: .seconds(120)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'compared'") == 40
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(proxy.count("POST /api/tasks") >= 40, "the copies went through the PHP-like proxy")
            let (_, report) = try await Self.report(h)
            // n divisible by 4 among 0..<40: 10.
            #expect(report["types"]?[m.legacyType]?["matched"]?.intValue == 30)
            #expect(report["types"]?[m.legacyType]?["mismatched"]?.intValue == 10)
        }
    }
}
