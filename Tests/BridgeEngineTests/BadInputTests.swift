import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// PRODUCT.md section 6: every bad input gets a clear reason, nothing is
/// lost, and good rows keep flowing past bad ones.
@Suite(.serialized, .heavy) struct BadInputTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var sql: String
        var arguments: StatementArguments
        var reason: String
        var description: String { name }
    }

    static let insert =
        """
        INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at, run_after_utc) VALUES (?, ?, \
        ?, datetime('now'), datetime('now'), ?)
        """

    static let cases: [Case] = [
        Case(
            name: "not JSON", sql: insert, arguments: ["youtube_channel_scrape", "{channel_url: nope", 5, nil],
            reason: "params_unparseable"),
        Case(name: "empty", sql: insert, arguments: ["youtube_channel_scrape", "   ", 5, nil], reason: "params_empty"),
        Case(
            name: "not an object", sql: insert,
            arguments: ["youtube_channel_scrape", #"["https://youtube.com/@a"]"#, 5, nil], reason: "params_not_object"),
        Case(
            name: "scalar", sql: insert, arguments: ["youtube_channel_scrape", "42", 5, nil],
            reason: "params_not_object"),
        Case(
            name: "empty object", sql: insert, arguments: ["youtube_channel_scrape", "{}", 5, nil],
            reason: "params_empty_object"),
        Case(
            name: "huge", sql: insert,
            arguments: [
                "youtube_channel_scrape", #"{"channel_url": "\#(String(repeating: "x", count: 1_100_000))"}"#, 5, nil,
            ], reason: "params_too_large"),
        Case(
            name: "invalid UTF-8",
            sql:
                """
                INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at) VALUES \
                ('youtube_channel_scrape', CAST(X'7B226368616E6E656C5F75726C223A2022C328227D' AS TEXT), 5, \
                datetime('now'), datetime('now'))
                """,
            arguments: [], reason: "params_invalid_utf8"),
        Case(
            name: "fails param_schema", sql: insert,
            arguments: ["youtube_channel_scrape", #"{"channel": "https://youtube.com/@a"}"#, 5, nil],
            reason: "param_schema"),
        Case(
            name: "wrong type in param_schema", sql: insert,
            arguments: ["youtube_channel_scrape", #"{"channel_url": 7}"#, 5, nil], reason: "param_schema"),
        Case(
            name: "garbage run_after_utc", sql: insert,
            arguments: ["youtube_channel_scrape", #"{"channel_url": "x"}"#, 5, "next tuesday"],
            reason: "run_after_unparseable"),
    ]

    @Test func eachBadRowIsQuarantinedWithItsReasonWhileGoodRowsFlow() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            var expected: [Int64: String] = [:]
            for c in Self.cases {
                try producer.execute(c.sql, c.arguments)
                let id = try producer.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM task_queue")! }
                expected[id] = c.reason
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "good-\#(id)"}"#)
            }
            // Python repr is data, not a bad row: forwarded through the literal parser.
            let repr = try producer.insert(
                type: "youtube_channel_scrape",
                parameters: "{'channel_url': 'https://youtube.com/@py', 'top_n': 50, 'deep': True, 'x': None}")
            // NULL / out-of-range priority rows can be forwarded (PRODUCT.md: nothing lost).
            let oddPriority = try producer.insert(
                type: "youtube_channel_scrape", parameters: #"{"channel_url": "prio"}"#, priority: 7)
            let quarantined = try await eventually(timeout: .seconds(15)) {
                try await h.store.quarantineList().count == expected.count
            }
            #expect(quarantined)
            for q in try await h.store.quarantineList() {
                #expect(expected[q.legacyID] == q.reason, "row \(q.legacyID): \(q.detail)")
                #expect(!q.detail.isEmpty)
            }
            // Quarantined rows stay claimed by the bridge with the reason visible to legacy tooling.
            for (id, _) in expected {
                let row = try #require(try h.rows(where: "id = ?", [id]).first)
                #expect(row["status"] as String == "claimed")
                #expect((row["error_message"] as String?)?.hasPrefix("taskbridge quarantine") == true)
            }
            let goodCount = Self.cases.count + 2
            let forwarded = try await eventually(timeout: .seconds(15)) {
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('sent','done')") == goodCount
            }
            #expect(forwarded)
            let reprTask = try #require(
                try h.scalar("SELECT tm_task_id FROM _taskbridge_ledger WHERE legacy_id = ?", [repr]))
            let task = try await h.tm.client.getTask(id: Int64(reprTask))
            #expect(task.params == ["channel_url": "https://youtube.com/@py", "top_n": 50, "deep": true, "x": nil])
            #expect(try h.scalar("SELECT priority FROM _taskbridge_ledger WHERE legacy_id = ?", [oddPriority]) == 7)
        }
    }

    @Test func retryAfterFixingTheRowForwardsIt() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: "{broken")
            #expect(try await eventually { try await h.store.quarantineList().map(\.legacyID) == [id] })
            // Retrying without a fix quarantines it again.
            _ = try await h.store.quarantineRetry(ids: [id], taskType: nil)
            #expect(try await eventually { try await h.store.quarantineList().first?.legacyID == id })
            try producer.execute(
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "fixed"}"#, id])
            let released = try await h.store.quarantineRetry(ids: nil, taskType: "youtube_channel_scrape")
            #expect(released == [id])
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state IN ('sent','done')", [id]
                    ) == 1
                })
            #expect(try await h.store.quarantineList().isEmpty)
            let row = try #require(try h.rows(where: "id = ?", [id]).first)
            #expect(row["error_message"] as String? == nil)
        }
    }

    @Test func unmappedTypesAreLeftToLegacyWorkers() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let producer = try h.producer()
            let id = try producer.insert(type: "subreddit_scrape", parameters: #"{"subreddit": "python"}"#)
            let good = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "c"}"#)
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [good]) == 1
                })
            let row = try #require(try h.rows(where: "id = ?", [id]).first)
            #expect(row["status"] as String == "queued")
            let report = try await h.store.statusReport()
            #expect(report.first { $0.taskType == "subreddit_scrape" }?.queued == 1)
        }
    }

    @Test func wrongAPIKeyQuarantinesNothingAndReportsUnhealthy() async throws {
        try await BridgeHarness.with(
            types: [channel], configure: { $0.taskManager.apiKey = "wrong" }, startEngine: false
        ) { h in
            // The harness's bridge client carries the right key; use a bridge
            // with a wrong one to see what an operator would see.
            var cfg = h.config
            cfg.taskManager.apiKey = "definitely-wrong"
            var cc = try TaskManagerClientConfigurationFactory.make(url: h.tm.baseURL, key: "definitely-wrong")
            cc.maxAttempts = 1
            let client = TaskManagerClientFactory.make(cc)
            let engine = BridgeEngineFactory.make(config: cfg, store: h.store, client: client)
            let run = Task { try? await engine.run() }
            let producer = try h.producer()
            _ = try await eventually { (try? await h.store.modes()["youtube_channel_scrape"]) == "forward" }
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "k"}"#)
            let unhealthy = try await eventually {
                let health = await engine.health()
                return !health.healthy && health.details["api_key_accepted"] == .bool(false)
            }
            #expect(unhealthy)
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'intent'", [id]) == 1
                })
            #expect(try await h.store.quarantineList().isEmpty)
            let text = PHPJSON.encode(await engine.health().details)
            #expect(!text.contains("definitely-wrong"), "the key leaked into health output")
            engine.stop()
            await run.value
            await client.shutdown()
        }
    }
}
