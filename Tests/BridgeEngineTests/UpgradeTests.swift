import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import Testing

/// A file installed by an older taskbridge is brought up to date in place,
/// keeping its modes and audit trail.
@Suite struct UpgradeTests {
    /// Version 4's mode table: no canary columns, no `reverse` in its CHECK.
    static let version4ModeDDL = """
        CREATE TABLE _taskbridge_mode (task_type TEXT PRIMARY KEY, mode TEXT NOT NULL
            CHECK (mode IN ('off','dry-run','forward','retired')), changed_at TEXT NOT NULL) WITHOUT ROWID
        """

    @Test func aVersion4ModeTableIsRebuiltWithItsRows() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("q.db")
        try LegacyFixture.a.create(at: path)
        let store = try LegacyQueueStore.open(
            path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false
        ).store
        defer { try? store.close() }
        try await store.install()
        let producer = try LegacyProducer(path: path)
        defer { try? producer.close() }
        // What a version 4 install left: the old table with a forward type, an older definition hash,
        // and its own triggers (dropped here: today's read columns the old table lacks).
        try producer.execute("DROP TRIGGER _taskbridge_ai")
        try producer.execute("DROP TRIGGER _taskbridge_aq")
        try producer.execute("DROP TABLE _taskbridge_mode")
        try producer.execute(Self.version4ModeDDL)
        try producer.execute(
            "INSERT INTO _taskbridge_mode (task_type, mode, changed_at) VALUES ('a', 'forward', '2026-01-01')")
        try producer.execute("UPDATE _taskbridge_meta SET value = 'v4' WHERE key = 'definition_hash'")
        #expect(try await store.objectsHealth() != .intact)

        try await store.install()
        #expect(try await store.objectsHealth() == .intact)
        #expect(try await store.modeStates()["a"] == ModeState(mode: "forward", percent: 100, shareBy: .id))
        try await store.setMode(taskType: "b", mode: "reverse", reason: "new mode", host: "h", actor: "t")
        try await store.setMode(
            taskType: "a", mode: "forward", percent: 25, shareBy: .params, reason: "canary", host: "h", actor: "t")
        let states = try await store.modeStates()
        #expect(states["a"] == ModeState(mode: "forward", percent: 25, shareBy: .params))
        #expect(states["b"]?.mode == "reverse")
        // The producer's connection, open across the upgrade, inserts through the new trigger.
        let id = try producer.insert(type: "a", parameters: #"{"k": 1}"#)
        let status = try producer.read { db in
            try String.fetchOne(db, sql: "SELECT status FROM task_queue WHERE id = ?", arguments: [id])
        }
        #expect(status == "queued" || status == "claimed")
    }
}
