import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

@Suite(.serialized, .heavy) struct CaptureTests {
    /// The bridge's own writes to task_queue create no change rows; the same
    /// write by anyone else does.
    @Test func ownWritesDoNotComeBackAsWork() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            try await h.store.install()
            _ = try await h.store.setMode(
                taskType: "youtube_channel_scrape", mode: "forward", reason: nil, host: "t", actor: "t")
            let producer = try h.producer()
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "e"}"#)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes") == 1)
            let policy = CapturePolicyFactory.make([channel])
            let batch = try #require(try await h.store.readChanges(limit: 10))
            let decisions = Dictionary(
                uniqueKeysWithValues: batch.toDecide.map { ($0.id, CapturePolicyFactory.input(policy, $0)) })
            _ = try await h.store.applyChanges(batch, decisions: decisions)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes") == 0)
            try await h.store.recordSends([.sent(legacyID: id, taskID: 1, status: "pending", deduplicated: false)])
            try await h.store.recordMirror([
                .init(legacyID: id, tmStatus: "claimed", attempts: 1, result: nil, error: nil, nextCheckAt: 0)
            ])
            #expect(try h.rows(where: "id = ?", [id]).first?["status"] as String? == "running")
            try await h.store.recordMirror([
                .init(
                    legacyID: id, tmStatus: "completed", attempts: 1, result: ["ok": true], error: nil,
                    nextCheckAt: 0)
            ])
            #expect(try h.rows(where: "id = ?", [id]).first?["status"] as String? == "completed")
            #expect(
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes") == 0, "the bridge's own writes were captured")
            // Someone else resets the bridged row: that is captured.
            try producer.execute("UPDATE task_queue SET status = 'claimed' WHERE id = ?", [id])
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes WHERE op = 'U'") == 1)
            // A legacy worker completing an off-type row costs no change row.
            let off = try producer.insert(type: "youtube_video_scrape", parameters: #"{"video_url": "v"}"#)
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "w")
            #expect(try worker.claim()?.id == off)
            try worker.complete(off)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_changes") == 1)
        }
    }

    /// A terminal row reset behind the bridge is restored: mirrored status never regresses.
    @Test func terminalRowResetBehindTheBridgeIsRestored() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "t"}"#)
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually {
                    _ = try await api.runOnce();
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 1
                })
            try producer.execute("UPDATE task_queue SET status = 'running', completed_at = NULL WHERE id = ?", [id])
            #expect(
                try await eventually { try h.rows(where: "id = ?", [id]).first?["status"] as String? == "completed" })
        }
    }

    /// A finished row put back in the queue by hand is claimed by the update
    /// trigger inside that same UPDATE (no legacy worker ever sees it queued),
    /// forwarded again, and lands on its own finished task: not a collapse
    /// (issue 8, items 2 and 4).
    @Test func requeuedRowIsForwardedAgain() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "again"}"#)
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually {
                    _ = try await api.runOnce();
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [id])
                        == 1
                })
            try producer.execute(
                """
                UPDATE task_queue SET status = 'queued', claimed_by = NULL, completed_at = NULL, result_data = NULL \
                WHERE id = ?
                """,
                [id])
            // Read right after the producer's commit: already the bridge's again.
            let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy")
            #expect(try worker.claim() == nil, "a legacy worker could take the re-queued row")
            try worker.close()
            #expect(try h.rows(where: "id = ?", [id]).first?["claimed_by"] as String? == "taskbridge")
            #expect(
                try await eventually {
                    try h.scalar(
                        """
                        SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed' AND claimed_by = \
                        'taskbridge'
                        """,
                        [id]) == 1
                })
            #expect(try h.scalar("SELECT collapsed FROM _taskbridge_ledger WHERE legacy_id = ?", [id]) == 0)
            #expect(
                try h.scalar(
                    """
                    SELECT COUNT(*) FROM _taskbridge_ledger_archive WHERE legacy_id = ? AND archive_reason = \
                    'requeued'
                    """,
                    [id]) == 1)
        }
    }

    @Test func triggerTimestampsLookLikePythonIsoformat() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let id = try h.producer().insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "ts"}"#)
            let claimedAt = try #require(try h.rows(where: "id = ?", [id]).first?["claimed_at"] as String?)
            #expect(
                claimedAt.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00/) != nil, "\(claimedAt)")
        }
    }

    @Test func droppedTriggerIsDetectedAndReinstalled() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            try producer.execute("DROP TRIGGER _taskbridge_ai")
            // Inserts while the trigger is gone are still caught (backlog claim after reinstall).
            let during = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "during"}"#)
            let reinstalled = try await eventually(timeout: .seconds(15)) {
                try h.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_taskbridge_ai'") == 1
            }
            #expect(reinstalled)
            #expect(try await h.store.objectsHealth() == .intact)
            let after = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "after"}"#)
            #expect(
                try h.rows(where: "id = ?", [after]).first?["status"] as String? == "claimed",
                "claimed at capture again")
            #expect(
                try await eventually(timeout: .seconds(15)) {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id IN (?, ?) AND state IN ('sent',"
                            + "'done')",
                        [during, after]) == 2
                })
        }
    }

    @Test func alteredTriggerIsDetected() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            try await h.store.install()
            #expect(try await h.store.objectsHealth() == .intact)
            let producer = try h.producer()
            try producer.execute("DROP TRIGGER _taskbridge_ad")
            try producer.execute("CREATE TRIGGER _taskbridge_ad AFTER DELETE ON task_queue BEGIN SELECT 1; END")
            #expect(try await h.store.objectsHealth() == .damaged(missing: [], altered: true))
            try await h.store.install()
            #expect(try await h.store.objectsHealth() == .intact)
        }
    }

    @Test func modeChangeWhileRunningAndRollback() async throws {
        var start = channel
        start.mode = .off
        try await BridgeHarness.with(types: [start]) { h in
            let producer = try h.producer()
            let before = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "before"}"#)
            #expect(try h.rows(where: "id = ?", [before]).first?["status"] as String? == "queued")
            try await h.store.setMode(
                taskType: "youtube_channel_scrape", mode: "forward", reason: "go", host: "h", actor: "a")
            // The trigger applies the new mode at the very next insert.
            let next = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "next"}"#)
            #expect(try h.rows(where: "id = ?", [next]).first?["status"] as String? == "claimed")
            // The running bridge claims the backlog within its poll interval.
            #expect(
                try await eventually {
                    try h.rows(where: "id = ?", [before]).first?["claimed_by"] as String? == "taskbridge"
                })
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 2
                })
            // Roll back: new rows go to legacy workers, forwarded rows keep being mirrored.
            try await h.store.setMode(
                taskType: "youtube_channel_scrape", mode: "off", reason: "rollback", host: "h", actor: "a")
            let afterRollback = try producer.insert(
                type: "youtube_channel_scrape", parameters: #"{"channel_url": "after"}"#)
            #expect(try h.rows(where: "id = ?", [afterRollback]).first?["status"] as String? == "queued")
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually {
                    _ = try await api.runOnce()
                    return try h.scalar(
                        "SELECT COUNT(*) FROM task_queue WHERE status = 'completed' AND id IN (?, ?)", [before, next])
                        == 2
                })
            #expect(try h.rows(where: "id = ?", [afterRollback]).first?["status"] as String? == "queued")
            let audit = try await h.store.audit()
            #expect(audit.prefix(2).map(\.to) == ["off", "forward"])
            #expect(audit.first?.reason == "rollback" && audit.first?.from == "forward" && audit.first?.host == "h")
        }
    }

    @Test func dryRunRecordsVerdictsAndSendsNothing() async throws {
        var dry = channel
        dry.mode = .dryRun
        try await BridgeHarness.with(types: [dry]) { h in
            let producer = try h.producer()
            let good = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "ok"}"#)
            let bad = try producer.insert(
                type: "youtube_channel_scrape", parameters: #"{"url": "missing channel_url"}"#)
            #expect(try await eventually { try h.scalar("SELECT COUNT(*) FROM _taskbridge_dryrun") == 2 })
            #expect(
                try h.scalar(
                    "SELECT COUNT(*) FROM _taskbridge_dryrun WHERE legacy_id = ? AND verdict = 'would-forward'", [good])
                    == 1)
            #expect(
                try h.scalar(
                    """
                    SELECT COUNT(*) FROM _taskbridge_dryrun WHERE legacy_id = ? AND verdict = 'would-reject' AND \
                    reason LIKE '%Missing required property: .channel_url%'
                    """,
                    [bad]) == 1)
            #expect(
                try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 2, "dry-run claims nothing")
            #expect(try await h.tm.client.listTasks().isEmpty, "dry-run sends nothing")
        }
    }

    @Test func collapseAndPerRowDedupe() async throws {
        var perRow = video
        perRow.mode = .forward
        perRow.dedupe = .perRow
        try await BridgeHarness.with(types: [channel, perRow]) { h in
            let producer = try h.producer()
            let typeID = try await h.typeID(channel.name)
            // A finished task first; an identical row then collapses onto it and gets its result at once.
            let first = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "same"}"#)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually {
                    _ = try await api.runOnce();
                    return try h.scalar(
                        "SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [first]) == 1
                })
            let second = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "same"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [second]) == 1
                })
            #expect(try h.scalar("SELECT collapsed FROM _taskbridge_ledger WHERE legacy_id = ?", [second]) == 1)
            #expect(
                try h.scalar(
                    "SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_ledger WHERE legacy_id IN (?, ?)",
                    [first, second]) == 1)
            #expect(try await h.store.statusReport().first { $0.taskType == "youtube_channel_scrape" }?.collapsed == 1)
            // per-row: identical rows become distinct tasks carrying the legacy id.
            let a = try producer.insert(type: "youtube_video_scrape", parameters: #"{"video_url": "v"}"#)
            let b = try producer.insert(type: "youtube_video_scrape", parameters: #"{"video_url": "v"}"#)
            #expect(
                try await eventually {
                    try h.scalar(
                        """
                        SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_ledger WHERE legacy_id IN (?, ?) AND \
                        tm_task_id IS NOT NULL
                        """,
                        [a, b]) == 2
                })
            let taskID = try h.scalar("SELECT tm_task_id FROM _taskbridge_ledger WHERE legacy_id = ?", [a])
            // The origin of the table's generation travels beside the id (invariant 10).
            let origin = try #require(try h.scalarText("SELECT value FROM _taskbridge_meta WHERE key = 'origin'"))
            #expect(
                try await h.tm.client.getTask(id: Int64(taskID)).params
                    == ["video_url": "v", "_legacy_id": .int(a), "_legacy_origin": .string(origin)])
        }
    }

    @Test func futureRunAfterIsForwardedWhenDue() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            // Due in an hour: however slow the machine, it is not due while checked.
            let due = LegacyTimestamp.format(Date().addingTimeInterval(3600))
            let id = try producer.insert(
                type: "youtube_channel_scrape", parameters: #"{"channel_url": "later"}"#, runAfter: due)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ?", [id]) == 1
                })
            // A row due now, inserted after it, goes first: the sender has looked
            // at the ledger since the future row was recorded.
            let now = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "now"}"#)
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [now]) == 1
                })
            #expect(
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'intent'", [id])
                    == 1, "sent before it was due")
            // The hour passes (its recorded due time moves to now): it is sent.
            try producer.execute("UPDATE _taskbridge_ledger SET due_at = 0 WHERE legacy_id = ?", [id])
            #expect(
                try await eventually(timeout: .seconds(10)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [id])
                        == 1
                })
        }
    }
}

enum CapturePolicyFactory {
    static func make(_ types: [TypeMapping]) -> CapturePolicy { .init(mappings: types, bridgeID: "taskbridge") }

    static func input(_ policy: CapturePolicy, _ row: LegacyRow) -> LegacyQueueStore.CaptureInput {
        policy.decide(row, mode: .forward, origin: nil).input
    }
}

import BridgeEngine
