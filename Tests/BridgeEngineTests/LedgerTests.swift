import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// The ledger's transitions and invariant 9: an entry applies only to the row
/// it was made for, across a recreated queue and partial restores.
@Suite(.serialized, .heavy) struct LedgerTests {
    static func completeAll(
        _ h: BridgeHarness, expecting count: Int, where condition: String = "1"
    ) async throws -> Bool {
        let typeID = try await h.typeID(channel.name)
        let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
        return try await eventually(timeout: .seconds(30)) {
            while try await api.runOnce() != nil {}
            return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed' AND \(condition)") == count
        }
    }

    static func taskIDs(_ h: BridgeHarness) throws -> Set<Int> {
        let q = try observerConnection(h.legacyPath)
        defer { try? q.close() }
        return Set(
            try q.read { db in
                try Int.fetchAll(db, sql: "SELECT tm_task_id FROM _taskbridge_ledger WHERE tm_task_id IS NOT NULL")
            })
    }

    /// PrismQ's `QueueDatabase(path)` drops and recreates `task_queue`; ids
    /// restart at 1 (spec legacy 10.2). New rows must be new, never given the
    /// results of the old rows that had their ids.
    @Test func recreatedQueueNeverGetsOldResults() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            for i in 1...5 {
                try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "old-\#(i)"}"#)
            }
            #expect(try await Self.completeAll(h, expecting: 5))
            let oldTasks = try Self.taskIDs(h)
            // What QueueDatabase(path) does: schema.sql, DROP TABLE then CREATE TABLE.
            try producer.execute("DROP TABLE task_queue")
            try producer.execute(LegacySchema.variantADDL(table: "task_queue"))
            // The bridge notices (the triggers went with the table) and reinstalls them.
            #expect(
                try await eventually(timeout: .seconds(40)) {
                    try h.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_taskbridge_ai'") == 1
                })
            var ids: [Int64] = []
            for i in 1...3 {
                ids.append(try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "new-\#(i)"}"#))
            }
            #expect(ids == [1, 2, 3], "AUTOINCREMENT restarted with the table")
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 3
                })
            let newTasks = try Self.taskIDs(h)
            #expect(newTasks.isDisjoint(with: oldTasks), "a new row was linked to an old task")
            #expect(
                try h.scalar(
                    "SELECT COUNT(*) FROM task_queue WHERE status IN ('completed','failed') OR result_data IS NOT NULL")
                    == 0,
                "a new row got an old result")
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger_archive") == 5)
            #expect(try h.scalar("SELECT CAST(value AS INTEGER) FROM _taskbridge_meta WHERE key = 'generation'") == 2)
            // Executed now, and only now.
            #expect(try await Self.completeAll(h, expecting: 3))
            let results = try h.rows().map { $0["result_data"] as String? }
            #expect(results.allSatisfy { $0?.contains("items_processed") == true })
            // Verify compares the new rows only; the archive is counted, and exported.
            let verify = try await CLIRun.run(["verify", "--grace", "0", "--json"], harness: h)
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            #expect(try JSONParser.parse(verify.stdout)["archived_entries"] == 5)
            let archive = h.tm.directory.path("after-recreate.jsonl")
            #expect(try await CLIRun.run(["export", "--out", archive], harness: h).status == 0)
            let lines = try String(contentsOfFile: archive, encoding: .utf8).split(separator: "\n")
            #expect(lines.filter { $0.contains(#""kind":"_taskbridge_ledger_archive""#) }.count == 5)
        }
    }

    /// Entries from before fingerprints (an upgrade) get their row's
    /// fingerprint when the objects are reinstalled, so they too apply only
    /// to their own row from then on.
    @Test func upgradeGivesOldEntriesTheirRowsFingerprint() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            let id = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "old-version"}"#)
            #expect(try await eventually { try Self.taskIDs(h).count == 1 })
            let expected = try h.scalarText("SELECT fingerprint FROM _taskbridge_ledger WHERE legacy_id = ?", [id])
            try producer.execute("UPDATE _taskbridge_ledger SET fingerprint = NULL")
            try await h.store.install()
            #expect(expected != nil)
            #expect(
                try h.scalarText("SELECT fingerprint FROM _taskbridge_ledger WHERE legacy_id = ?", [id]) == expected)
        }
    }

    /// A table restored from an older dump (its ids will be reused) under a
    /// newer ledger: rows with reused ids are new rows.
    @Test func tableRestoredOlderThanTheLedger() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            for i in 1...5 { try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "r-\#(i)"}"#) }
            #expect(try await Self.completeAll(h, expecting: 5))
            let oldTasks = try Self.taskIDs(h)
            // The dump had rows 1 to 3 and the sequence at 3.
            try producer.execute("DELETE FROM task_queue WHERE id > 3")
            try producer.execute("UPDATE sqlite_sequence SET seq = 3 WHERE name = 'task_queue'")
            let a = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "reused-a"}"#)
            let b = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "reused-b"}"#)
            #expect([a, b] == [4, 5])
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id IN (4, 5) AND state = 'sent'")
                        == 2
                })
            let reusedTasks = try Self.taskIDs(h).subtracting(oldTasks)
            #expect(reusedTasks.count == 2, "rows 4 and 5 must have tasks of their own")
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id IN (4, 5) AND status = 'completed'") == 0)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger_archive WHERE legacy_id IN (4, 5)") == 2)
            #expect(try await Self.completeAll(h, expecting: 5))
        }
    }

    /// A ledger restored from an older copy than the table: rows the bridge
    /// holds without an entry are adopted; their re-send finds their own
    /// tasks, which is not a collapse.
    @Test func ledgerRestoredOlderThanTheTable() async throws {
        try await BridgeHarness.with(types: [channel], configure: { $0.bridge.reconcileIntervalSeconds = 1 }) { h in
            let producer = try h.producer()
            for i in 1...5 { try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "l-\#(i)"}"#) }
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 5
                })
            try producer.execute("DELETE FROM _taskbridge_ledger WHERE legacy_id > 3")
            #expect(
                try await eventually(timeout: .seconds(40)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 5
                })
            #expect(try h.scalar("SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_ledger") == 5)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE collapsed = 1") == 0)
            #expect(try await h.tm.client.listTasks(limit: 100).count == 5, "the re-send created a task")
            #expect(try await Self.completeAll(h, expecting: 5))
        }
    }

    /// Rows the bridge holds as `running` with no ledger entry are adopted
    /// (issue 8, item 3); more than one page of them does not spin.
    @Test func runningOrphansAreAdopted() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            let producer = try h.producer()
            let now = LegacyTimestamp.format(Date())
            for i in 0..<600 {
                try producer.execute(
                    """
                    INSERT INTO task_queue (task_type, parameters, priority, status, claimed_by, claimed_at,
                        created_at, updated_at)
                    VALUES (?, ?, 5, 'running', 'taskbridge', ?, ?, ?)
                    """, [channel.legacyType, #"{"channel_url": "orphan-\#(i)"}"#, now, now, now])
            }
            h.startEngine()
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    (try? h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'")) == 600
                })
        }
    }

    /// A re-send whose answer says `deduplicated` onto a task no other row
    /// holds is the row's own; a second row on the same task is a collapse.
    @Test func resendIsNotACollapse() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            try await h.store.install()
            _ = try await h.store.setMode(
                taskType: channel.legacyType, mode: "forward", reason: nil, host: "t", actor: "t")
            let producer = try h.producer()
            let first = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "x"}"#)
            let second = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "x"}"#)
            let policy = CapturePolicyFactory.make([channel])
            let batch = try #require(try await h.store.readChanges(limit: 10))
            let decisions = Dictionary(
                uniqueKeysWithValues: batch.toDecide.map { ($0.id, CapturePolicyFactory.input(policy, $0)) })
            _ = try await h.store.applyChanges(batch, decisions: decisions)
            let r1 = try await h.store.recordSends([
                .sent(legacyID: first, taskID: 7, status: "pending", deduplicated: true)
            ])
            #expect(r1.collapsed == 0)
            let r2 = try await h.store.recordSends([
                .sent(legacyID: second, taskID: 7, status: "pending", deduplicated: true)
            ])
            #expect(r2.collapsed == 1)
            // A late refusal of a placed row changes nothing.
            let late = try await h.store.recordSends([
                .refused(
                    legacyID: first, taskType: channel.legacyType, code: "api_validation",
                    detail: "late")
            ])
            #expect(late.quarantines.isEmpty)
            #expect(try h.scalarText("SELECT state FROM _taskbridge_ledger WHERE legacy_id = ?", [first]) == "sent")
        }
    }

    /// Capture decides outside the write lock; a row that changed between
    /// the read and the write is not recorded from the old read, and comes back.
    @Test func rowChangedBetweenReadAndWriteIsDecidedAgain() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            try await h.store.install()
            _ = try await h.store.setMode(
                taskType: channel.legacyType, mode: "forward", reason: nil, host: "t", actor: "t")
            let producer = try h.producer()
            let id = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "before"}"#)
            let policy = CapturePolicyFactory.make([channel])
            let stale = try #require(try await h.store.readChanges(limit: 10))
            let decisions = Dictionary(
                uniqueKeysWithValues: stale.toDecide.map { ($0.id, CapturePolicyFactory.input(policy, $0)) })
            try producer.execute(
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "after"}"#, id])
            let r = try await h.store.applyChanges(stale, decisions: decisions)
            #expect(r.intents == 0)
            #expect(
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes WHERE row_id = ?", [id]) == 1,
                "the change row was dropped")
            let fresh = try #require(try await h.store.readChanges(limit: 10))
            let again = Dictionary(
                uniqueKeysWithValues: fresh.toDecide.map { ($0.id, CapturePolicyFactory.input(policy, $0)) })
            #expect(try await h.store.applyChanges(fresh, decisions: again).intents == 1)
            #expect(
                try h.scalarText("SELECT params_json FROM _taskbridge_ledger WHERE legacy_id = ?", [id])
                    == #"{"channel_url":"after"}"#)
        }
    }
}
