import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerModel
import Testing

/// The ledger's transitions through the store alone, on a temporary file
/// written by a separate producer connection: no server, no engine. The
/// engine decides; here the decisions are given, so each transition and its
/// guard can be seen by itself.
@Suite struct LedgerStoreTests {
    static let type = "video_scrape"

    /// A fresh variant A file with the bridge's objects and `type` in forward.
    static func open() async throws -> (TemporaryDirectory, LegacyQueueStore, LegacyProducer) {
        let dir = try TemporaryDirectory(prefix: "ledger")
        let path = dir.path("worker_queue.db")
        try LegacyFixture.a.create(at: path)
        let store = try LegacyQueueStore.open(
            path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false
        ).store
        try await store.install()
        _ = try await store.seedMode(taskType: type, mode: "forward", shareBy: .id, host: "test")
        return (dir, store, try LegacyProducer(path: path))
    }

    static func intent(_ params: String) -> LegacyQueueStore.CaptureInput {
        .intent(Ledger.Intent(tmType: "T", paramsJSON: params, dedupeKey: "k-" + params, priority: 5, dueAt: 0))
    }

    static func state(_ store: LegacyQueueStore, _ id: Int64) async throws -> String? {
        try await store.read { db in
            try String.fetchOne(db, sql: "SELECT state FROM _taskbridge_ledger WHERE legacy_id = ?", arguments: [id])
        }
    }

    @Test func captureSendAndMirrorEachMoveOneState() async throws {
        let (dir, store, producer) = try await Self.open()
        defer { _ = dir }
        let id = try producer.insert(type: Self.type, parameters: #"{"v": 1}"#)
        // The insert trigger took the row for the bridge inside the producer's transaction.
        let row = try await store.read { db in
            try Row.fetchOne(db, sql: "SELECT status, claimed_by FROM task_queue").map {
                [$0["status"] as String?, $0["claimed_by"] as String?]
            }
        }
        #expect(row == ["claimed", "taskbridge"])

        let batch = try #require(try await store.readChanges(limit: 10))
        #expect(batch.toDecide.map(\.id) == [id])
        let captured = try await store.applyChanges(batch, decisions: [id: Self.intent(#"{"v":1}"#)])
        #expect(captured.intents == 1)
        #expect(try await Self.state(store, id) == "intent")
        #expect(try await store.readChanges(limit: 10) == nil, "the change row was consumed with the decision")

        let sent = try await store.recordSends([.sent(legacyID: id, taskID: 41, status: "pending", deduplicated: false)]
        )
        #expect(sent.sent == 1 && sent.collapsed == 0)
        #expect(try await Self.state(store, id) == "sent")

        let mirrored = try await store.recordMirror([
            Ledger.Observation(
                legacyID: id, tmStatus: "completed", attempts: 1, result: ["ok": true], error: nil, nextCheckAt: 0)
        ])
        #expect(mirrored.terminal == 1)
        #expect(try await Self.state(store, id) == "done")
        let done = try await store.read { db in
            try Row.fetchOne(db, sql: "SELECT status, result_data FROM task_queue WHERE id = ?", arguments: [id]).map {
                [$0["status"] as String?, $0["result_data"] as String?]
            }
        }
        #expect(done?[0] == "completed")
        #expect(try JSONParser.parse((done?[1] ?? nil) ?? "") == ["ok": true])
        // A terminal row never regresses: a late "claimed" changes nothing.
        _ = try await store.recordMirror([
            Ledger.Observation(legacyID: id, tmStatus: "claimed", attempts: 1, result: nil, error: nil, nextCheckAt: 0)
        ])
        #expect(try await Self.state(store, id) == "done")
    }

    /// The watcher wakes capture only when these marks move: a producer's
    /// insert and a mode change (its audit row) move them, the bridge's own
    /// capture and send writes do not.
    @Test func captureMarksMoveForProducersAndModeChangesOnly() async throws {
        let (dir, store, producer) = try await Self.open()
        defer { _ = dir }
        let start = try #require(store.captureMarks())
        let id = try producer.insert(type: Self.type, parameters: #"{"v": 1}"#)
        let afterInsert = try #require(store.captureMarks())
        #expect(afterInsert.changes > start.changes && afterInsert.table > start.table)
        #expect(afterInsert.audit == start.audit)

        let batch = try #require(try await store.readChanges(limit: 10))
        _ = try await store.applyChanges(batch, decisions: [id: Self.intent(#"{"v":1}"#)])
        _ = try await store.recordSends([.sent(legacyID: id, taskID: 7, status: "pending", deduplicated: false)])
        #expect(store.captureMarks() == afterInsert, "the bridge's own writes leave them as they were")

        try await store.setMode(taskType: Self.type, mode: "off", reason: "test", host: "test", actor: "test")
        #expect(try #require(store.captureMarks()).audit > afterInsert.audit)
    }

    /// A generation that begins between the read and the write: the batch,
    /// decided with the old origin, is applied to nothing and decided again.
    @Test func decisionsMadeWithAnOlderOriginAreNotRecorded() async throws {
        let (dir, store, producer) = try await Self.open()
        defer { _ = dir }
        let before = try await store.origin()
        #expect(before != nil)
        let id = try producer.insert(type: Self.type, parameters: #"{"v": 2}"#)
        let stale = try #require(try await store.readChanges(limit: 10))
        let began = try await store.beginNewGeneration()
        #expect(began.generation == 2)
        let after = try await store.origin()
        #expect(after != nil && after != before)
        let r = try await store.applyChanges(stale, decisions: [id: Self.intent(#"{"v":2}"#)])
        #expect(r.intents == 0 && r.remaining)
        #expect(try await Self.state(store, id) == nil)
        // Read again: the batch carries the new origin and is recorded.
        let fresh = try #require(try await store.readChanges(limit: 10))
        #expect(fresh.origin == after)
        #expect(try await store.applyChanges(fresh, decisions: [id: Self.intent(#"{"v":2}"#)]).intents == 1)
        #expect(try await store.knownOrigins() == Set([before!, after!]))
    }

    /// The producer recreates the table (PrismQ's `QueueDatabase(path)`):
    /// the next capture write notices the schema moved and begins the new
    /// generation itself, before any decision for the new rows is recorded.
    @Test func aRecreatedTableBeginsANewGenerationInTheCaptureWrite() async throws {
        let (dir, store, producer) = try await Self.open()
        defer { _ = dir }
        let old = try producer.insert(type: Self.type, parameters: #"{"v": 3}"#)
        let first = try #require(try await store.readChanges(limit: 10))
        #expect(try await store.applyChanges(first, decisions: [old: Self.intent(#"{"v":3}"#)]).intents == 1)
        let origin = try await store.origin()

        try producer.execute("DROP TABLE task_queue")
        try producer.execute(LegacySchema.variantADDL())
        try await store.install()  // what reconcile does when it finds the triggers gone
        let again = try producer.insert(type: Self.type, parameters: #"{"v": 3}"#)
        #expect(again == old, "ids restart at 1")
        let batch = try #require(try await store.readChanges(limit: 10))
        let r = try await store.applyChanges(batch, decisions: [again: Self.intent(#"{"v":3}"#)])
        #expect(r.newGeneration?.generation == 2)
        #expect(r.intents == 0, "decided with the old origin: not recorded")
        #expect(try await store.origin() != origin)
        #expect(try await store.archivedCount() == 1, "the old row's entry is archived, never applied")
    }
}
