import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// `cutover TYPE forward --percent P` through the real CLI and `taskbridge
/// run`, with PrismQ's legacy workers (claim SQL unchanged, any type) and
/// TaskManager workers executing side by side.
@Suite(.serialized, .heavy) struct CanaryTests {
    static let perRow = TypeMapping(
        legacyType: "youtube_video_scrape", name: "PrismQ.YouTube.Video.Scrape", mode: .off, dedupe: .perRow)

    /// Workers of both sides until `stop`; what each executed goes to `log`.
    static func workers(_ h: BridgeHarness, log: ExecutionLog, typeIDs: [Int64], stop: Deadline) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 {
                group.addTask {
                    let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-\(w)")
                    defer { try? worker.close() }
                    try await worker.run(until: stop, log: log)
                }
            }
            group.addTask {
                try await APIWorker(client: h.tm.client, workerID: "api-0", typeIDs: typeIDs).run(until: stop, log: log)
            }
            try await group.waitForAll()
        }
    }

    /// Bridged rows of a type (the ledger), and rows a legacy worker holds or finished.
    static func split(_ h: BridgeHarness, _ type: String) throws -> (bridge: Int, legacy: Int) {
        let bridge = try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE task_type = ?", [type])
        let legacy = try h.scalar(
            "SELECT COUNT(*) FROM task_queue WHERE task_type = ? AND claimed_by LIKE 'legacy-%'", [type])
        return (bridge, legacy)
    }

    static func allFinished(_ h: BridgeHarness, _ n: Int) throws -> Bool {
        try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status IN ('completed','failed')") == n
    }

    @Test func aQuarterCanaryRampsUpAndRollsBack() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward, Self.perRow], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            for (type, args) in [
                (channel.legacyType, ["--percent", "25"]), (Self.perRow.legacyType, ["--percent", "25"]),
            ] {
                let r = try await CLIRun.run(
                    ["cutover", type, "forward"] + args + ["--reason", "canary 25"], harness: h)
                #expect(r.status == 0 && r.stdout.contains("forward 25%"), "\(r.stdout) \(r.stderr)")
            }
            let ids = [try await h.typeID(channel.name), try await h.typeID(Self.perRow.name)]
            let log = ExecutionLog()
            // Workers run until the test ends (cancelled), however slow the machine.
            let stop = Deadline(seconds: 3600)
            let workers = Task { try await Self.workers(h, log: log, typeIDs: ids, stop: stop) }
            defer { workers.cancel() }

            // 800 new rows of a collapse type with distinct params, 100 of a per-row type:
            // sized by what is asserted (a 25 % share within four standard deviations), not by time.
            let producer = try h.producer()
            for chunk in stride(from: 0, to: 800, by: 100) {
                try producer.insertBatch(
                    type: channel.legacyType,
                    parameters: (chunk..<chunk + 100).map { #"{"channel_url": "https://youtube.com/c\#($0)"}"# })
            }
            try producer.insertBatch(
                type: Self.perRow.legacyType, parameters: (0..<100).map { #"{"video_url": "v\#($0)"}"# })
            #expect(
                try await eventually(timeout: .seconds(90)) { try Self.allFinished(h, 900) },
                "\(bridge.stderrText.suffix(2000))")
            let c = try Self.split(h, channel.legacyType)
            #expect(c.bridge + c.legacy == 800)
            // 25 % of 800 is 200; a binomial standard deviation is about 12, four of them 50.
            #expect((150...250).contains(c.bridge), "the bridge took \(c.bridge) of 800 at 25 %")
            // Ids: 37 is prime to 100, so 100 consecutive ids hold exactly 25 below 25.
            let v = try Self.split(h, Self.perRow.legacyType)
            #expect(v.bridge == 25 && v.legacy == 75)
            let doubles = (await log.legacyDoubles, await log.apiDoubles)
            #expect(doubles == (0, 0))
            #expect(
                try h.scalar(
                    """
                    SELECT COUNT(*) FROM task_queue q JOIN _taskbridge_ledger l ON l.legacy_id = q.id
                    WHERE q.claimed_by LIKE 'legacy-%'
                    """) == 0, "no row on both sides")
            let executedByLegacy = await log.legacy.count
            #expect(executedByLegacy == 900 - c.bridge - 25)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'done'") == c.bridge + 25
                }, "every bridged row shows its task's result")
            let verify = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(verify.status == 0, "verify is clean: \(verify.stdout.suffix(1500)) \(verify.stderr)")
            let retire = try await CLIRun.run(
                ["retire-check", "--type", channel.legacyType, "--quiet-period", "0s"], harness: h)
            #expect(retire.status == 1 && retire.stdout.contains("raise it to 100"), "\(retire.stdout)")
            let status = try json(try await CLIRun.run(["status", "--json"], harness: h).stdout)
            let row = status["types"]?.arrayValue?.first { $0["task_type"]?.stringValue == channel.legacyType }
            #expect(row?["percent"]?.intValue == 25 && row?["left_to_legacy"]?.intValue == Int64(c.legacy))
            let metrics = try await bridge.expectServing("canary")
            #expect(metrics.sum("taskbridge_forward_percent", where: ["type": channel.legacyType]) == 25)
        }
    }

    /// Identical params land on one side; a raise takes the backlog by the
    /// same rule; `off` leaves new rows queued while forwarded ones finish.
    @Test func identicalRowsShareASideAndTheBacklogFollowsTheShare() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true)
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            let cut = try await CLIRun.run(
                ["cutover", channel.legacyType, "forward", "--percent", "25", "--reason", "canary"], harness: h)
            #expect(cut.status == 0, "\(cut.stderr)")
            let producer = try h.producer()
            // Ten parameter texts, each inserted 20 times.
            for round in 0..<20 {
                try producer.insertBatch(
                    type: channel.legacyType, parameters: (0..<10).map { #"{"channel_url": "same-\#($0)"}"# })
                _ = round
            }
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'claimed'")
                        == h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'")
                })
            for k in 0..<10 {
                let bridged = try h.scalar(
                    """
                    SELECT COUNT(*) FROM task_queue WHERE parameters = ? AND claimed_by = 'taskbridge'
                    """, [#"{"channel_url": "same-\#(k)"}"#])
                #expect(bridged == 0 || bridged == 20, "params same-\(k): \(bridged) of 20 with the bridge")
            }
            let queuedBefore = try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'")
            let bridgedBefore = try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger")
            #expect(queuedBefore + bridgedBefore == 200)

            // Raised to 100: the queued backlog goes to the bridge too.
            let raise = try await CLIRun.run(
                ["cutover", channel.legacyType, "forward", "--percent", "100", "--reason", "all in"], harness: h)
            #expect(raise.status == 0)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 200
                }, "\(bridge.stderrText.suffix(2000))")
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 0)

            // Rolled back to off: new rows stay queued; forwarded rows still get their results.
            let off = try await CLIRun.run(["cutover", channel.legacyType, "off", "--reason", "rollback"], harness: h)
            #expect(off.status == 0 && off.stdout.contains("keep being mirrored"), "\(off.stdout)")
            _ = try await bridge.expectServing("after rollback")
            try producer.insertBatch(
                type: channel.legacyType, parameters: (0..<20).map { #"{"channel_url": "n\#($0)"}"# })
            let worker = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [try await h.typeID(channel.name)])
            while try await worker.runOnce() != nil {}
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'done'") == 200
                })
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 20)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger") == 200)
            let audit = try h.scalar(
                "SELECT COUNT(*) FROM _taskbridge_audit WHERE task_type = ? AND to_mode = 'forward' AND percent = 25",
                [channel.legacyType])
            #expect(audit == 1, "the canary's share is in the audit trail")
        }
    }
}
