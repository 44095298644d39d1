import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite(.serialized, .heavy) struct VariantTests {
    @Test func aMinWithNullsIsBridged() async throws {
        try await BridgeHarness.with(variant: .aMin, types: [channel]) { h in
            #expect(h.store.schema.variant == .aMin)
            let producer = try h.producer()
            try producer.execute(
                """
                INSERT INTO task_queue (task_type, parameters, priority, created_at) VALUES ('youtube_channel_scrape', \
                NULL, 5, datetime('now'))
                """
            )
            let nullID = try producer.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM task_queue")! }
            try producer.execute(
                """
                INSERT INTO task_queue (task_type, parameters, priority, created_at) VALUES ('youtube_channel_scrape', \
                '{\"channel_url\": \"n\"}', NULL, 'garbage-time')
                """
            )
            let nullPriority = try producer.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM task_queue")!
            }
            #expect(try await eventually { try await h.store.quarantineList().map(\.reason) == ["params_null"] })
            #expect(try await h.store.quarantineList().first?.legacyID == nullID)
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT priority FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [nullPriority]
                    ) == 5
                })
        }
    }

    @Test func aWithoutRunAfterIsBridged() async throws {
        try await BridgeHarness.with(variant: .aNoRunAfter, types: [channel]) { h in
            #expect(h.store.schema.variant == .aNoRunAfter)
            let producer = try h.producer()
            let id = try producer.insertWithoutRunAfter(
                type: "youtube_channel_scrape", parameters: #"{"channel_url": "old"}"#)
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually {
                    _ = try await api.runOnce();
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [id])
                        == 1
                })
        }
    }

    @Test func variantBIsRefusedClearly() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("queue.db")
        try LegacyFixture.b.create(at: path)
        #expect {
            _ = try LegacyQueueStore.open(
                path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false)
        } throws: { error in
            "\(error)".contains("variant B") && "\(error)".contains("type/payload")
        }
        // Nothing was added to the refused file.
        let q = try observerConnection(path)
        #expect(
            try q.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '_taskbridge%'")
            } == 0)
    }

    @Test func missingColumnsAreNamed() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("odd.db")
        let q = try observerConnection(path)
        try q.write { db in
            try db.execute(
                sql: "CREATE TABLE task_queue (id INTEGER PRIMARY KEY, task_type TEXT, parameters TEXT, status TEXT)")
        }
        try q.close()
        #expect {
            _ = try LegacyQueueStore.open(
                path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false)
        } throws: { "\($0)".contains("missing column(s) claimed_by, claimed_at, result_data") }
    }

    @Test func missingDatabaseIsAnErrorUnlessCreateIfMissing() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: LegacyQueueError.self) {
            _ = try LegacyQueueStore.open(
                path: dir.path("none.db"), table: "task_queue", bridgeID: "b", createIfMissing: false)
        }
        let created = try LegacyQueueStore.open(
            path: dir.path("data/new.db"), table: "task_queue", bridgeID: "b", createIfMissing: true)
        #expect(created.created && created.store.schema.variant == .a)
    }
}

@Suite(.serialized, .heavy) struct OutageTests {
    @Test func apiDownAtStartThenBack() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            proxy.set(.status(503, body: "<html><body>Service Unavailable</body></html>"))
            h.startEngine()
            try await h.waitReady()
            let producer = try h.producer()
            var ids: [Int64] = []
            for i in 0..<10 {
                ids.append(
                    try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "down-\#(i)"}"#))
            }
            // Rows are captured and held; nothing is lost or quarantined while the API is down.
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent'") == 10
                })
            #expect(try await eventually { proxy.total() > 3 })
            #expect(try await h.store.quarantineList().isEmpty)
            proxy.set(.pass)
            #expect(
                try await eventually(timeout: .seconds(40)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 10
                })
            #expect(try await h.tm.client.listTasks(limit: 100).count == 10)
        }
    }

    @Test func apiRestartedMidRun() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            let producer = try h.producer()
            for i in 0..<5 {
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "a-\#(i)"}"#)
            }
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 5
                })
            proxy.set(.status(502, body: "Bad Gateway", contentType: "text/plain"))
            for i in 0..<5 {
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "b-\#(i)"}"#)
            }
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent' AND attempts > 0") >= 1
                })
            proxy.set(.pass)
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually(timeout: .seconds(40)) {
                    while try await api.runOnce() != nil {}
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 10
                })
            #expect(try await h.tm.client.listTasks(limit: 100).count == 10, "no duplicate tasks")
        }
    }

    /// A request that never answers must not hold back rows captured after it.
    @Test func aHangingRequestDoesNotBlockLaterRows() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            proxy.set(.swallowResponse)
            let producer = try h.producer()
            try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "first"}"#)
            #expect(try await eventually { proxy.count("POST /api/tasks") == 1 })
            try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "second"}"#)
            #expect(try await eventually(timeout: .seconds(3)) { proxy.count("POST /api/tasks") == 2 })
        }
    }

    @Test func rateLimitRetryAfterIsHonoured() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            proxy.set(.rateLimited(retryAfter: 30))
            let before = Date().timeIntervalSince1970
            let id = try h.producer().insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "r"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND attempts = 1", [id])
                        == 1
                })
            // The row's next attempt is planned after Retry-After (no jitter
            // below it), and no second create went out meanwhile.
            let next = try #require(
                try h.scalarText("SELECT next_attempt_at FROM _taskbridge_ledger WHERE legacy_id = ?", [id]))
            #expect((Double(next) ?? 0) >= before + 30)
            #expect(proxy.count("POST /api/tasks") == 1)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent'") == 1)
        }
    }
}
