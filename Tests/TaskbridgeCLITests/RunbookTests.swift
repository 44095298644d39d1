import BridgeConfig
import Foundation
import GRDB
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// The README runbook, step by step, with the real `taskbridge` executable:
/// install, dry-run (rows queued before `run` and inserted after it), forward,
/// quarantine and retry, cutover back and forth, verify, retire-check, export
/// and check, uninstall. `run` keeps going with metrics and health on, as
/// operators run it; every step checks that it is alive and serving.
@Suite(.serialized, .heavy) struct RunbookTests {
    @Test func everyRunbookStepWithARunningBridge() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            let producer = try h.producer()
            let bridge = try BridgeProcess(harness: h, metrics: true)
            let conf = bridge.configPath
            let type = channel.legacyType

            // 1. install
            let install = try await CLIRun.run(["install"], harness: h, config: conf)
            #expect(install.status == 0, "\(install.stderr)")
            #expect(try h.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_taskbridge_ledger'") == 1)

            // 2. dry-run: 5 rows queued while the type was off (the backlog
            // path), 5 inserted while it runs (the change path): issue 7, item 1.
            for i in 0..<5 { try producer.insert(type: type, parameters: #"{"channel_url": "before-\#(i)"}"#) }
            #expect(
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes") == 0, "off-type inserts leave no change rows")
            let dry = try await CLIRun.run(
                ["cutover", type, "dry-run", "--reason", "rehearsal"], harness: h, config: conf)
            #expect(dry.status == 0, "\(dry.stderr)")
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_dryrun") == 5
                })
            for i in 0..<5 { try producer.insert(type: type, parameters: #"{"channel_url": "after-\#(i)"}"#) }
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_dryrun WHERE verdict = 'would-forward'") == 10
                })
            var metrics = try await bridge.expectServing("dry-run")
            // Each of the 10 rows was judged at least once (a row can be seen
            // by both paths when it arrives between them; then it counts twice).
            #expect(metrics.sum("taskbridge_dry_run_total", where: ["type": type, "verdict": "would-forward"]) >= 10)
            #expect(
                try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 10, "dry-run claimed rows")

            // 3. forward: the 10 queued rows are claimed as backlog, new ones at insert.
            let fwd = try await CLIRun.run(
                ["cutover", type, "forward", "--reason", "ticket 1"], harness: h, config: conf)
            #expect(fwd.status == 0, "\(fwd.stderr)")
            for i in 0..<3 { try producer.insert(type: type, parameters: #"{"channel_url": "fwd-\#(i)"}"#) }
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('sent','done')") == 13
                })
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api-worker", typeIDs: [typeID])
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    while try await api.runOnce() != nil {}
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 13
                })
            metrics = try await bridge.expectServing("forward")
            #expect(metrics.sum("taskbridge_forwarded_total") >= 13)

            // 4. quarantine: a row that is not data is quarantined and logged;
            // fixed and retried, it is forwarded.
            let bad = try producer.insert(type: type, parameters: "channel_url = oops")
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_quarantine WHERE legacy_id = ?", [bad]) == 1
                })
            #expect(
                try await eventually {
                    bridge.stderrText.contains("row quarantined") && bridge.stderrText.contains("legacy_id=\(bad)")
                })
            let list = try await CLIRun.run(["quarantine", "list", "--json"], harness: h, config: conf)
            #expect(list.status == 0 && list.stdout.contains("params_unparseable"), "\(list.stdout)\(list.stderr)")
            try producer.execute(
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "fixed"}"#, bad])
            let retry = try await CLIRun.run(["quarantine", "retry", String(bad)], harness: h, config: conf)
            #expect(retry.status == 0, "\(retry.stderr)")
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    while try await api.runOnce() != nil {}
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [bad])
                        == 1
                })
            _ = try await bridge.expectServing("quarantine retry")

            // 5. cutover back and forth: while off, a new row is the legacy workers'.
            let off = try await CLIRun.run(
                ["cutover", type, "off", "--reason", "rollback drill"], harness: h, config: conf)
            #expect(off.status == 0, "\(off.stderr)")
            let legacyRow = try producer.insert(type: type, parameters: #"{"channel_url": "legacy-side"}"#)
            #expect(
                try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'queued'", [legacyRow]) == 1)
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-1")
            let claimed = try #require(try worker.claim())
            #expect(claimed.id == legacyRow)
            try worker.complete(claimed.id)
            try worker.close()
            let back = try await CLIRun.run(
                ["cutover", type, "forward", "--reason", "again"], harness: h, config: conf)
            #expect(back.status == 0, "\(back.stderr)")
            _ = try await bridge.expectServing("cutover back and forth")

            // 6. verify, 7. retire-check, 8. export and check: all clean.
            let verify = try await CLIRun.run(["verify", "--grace", "0"], harness: h, config: conf)
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            let retire = try await CLIRun.run(["retire-check", "--quiet-period", "0s"], harness: h, config: conf)
            #expect(retire.status == 0, "\(retire.stdout)\(retire.stderr)")
            let archive = h.tm.directory.path("final.jsonl")
            let export = try await CLIRun.run(["export", "--out", archive], harness: h, config: conf)
            #expect(export.status == 0, "\(export.stderr)")
            let check = try await CLIRun.run(["export", "--check", archive], harness: h, config: conf)
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            // Every installed table that holds records is in the archive, read
            // from the file itself: a table added later cannot be forgotten
            // (issue 14, item 1). Change rows and the echo flag are transient.
            let installed = Set(
                try h.strings(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_taskbridge\\_%' ESCAPE '\\'"
                )
            ).subtracting(["_taskbridge_changes", "_taskbridge_echo"])
            let trailer = try #require(
                try String(contentsOfFile: archive, encoding: .utf8).split(separator: "\n").last.map {
                    try JSONParser.parse(String($0))
                })
            let archived = Set((trailer["counts"]?.objectMembers ?? []).map(\.key))
            #expect(installed.isSubset(of: archived), "not exported: \(installed.subtracting(archived).sorted())")
            #expect(installed.contains("_taskbridge_reverse"))
            // The running bridge serves the model `status --json` prints (nothing moves now).
            let served = try JSONParser.parse(
                try await HTTPFetch.text("http://127.0.0.1:\(bridge.metricsPort!)/status.json"))
            let printed = try await CLIRun.run(["status", "--json"], harness: h, config: conf)
            #expect(printed.status == 0)
            #expect(try JSONParser.parse(printed.stdout) == served)
            // 15 rows: 10 dry-run rows, 3 forward rows and the fixed bad row went to
            // TaskManager; the one inserted while off went to a legacy worker.
            #expect(served["types"]?.arrayValue?.first?["forwarded"] == 14)
            metrics = try await bridge.expectServing("verify, retire-check, export")
            #expect(!metrics.has("taskbridge_loop_errors_total"), "a loop failed: \(bridge.stderrText.suffix(2000))")

            // 9. stop gracefully, then uninstall.
            bridge.terminate()
            #expect(try await bridge.waitForExit(timeout: .seconds(30)) == 0, "\(bridge.stderrText.suffix(2000))")
            let uninstall = try await CLIRun.run(["uninstall"], harness: h, config: conf)
            #expect(uninstall.status == 0, "\(uninstall.stderr)")
            #expect(
                try h.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '\\_taskbridge%' ESCAPE '\\'") == 0)
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue") == 15)
        }
    }
}
