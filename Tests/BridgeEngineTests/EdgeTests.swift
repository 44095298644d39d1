import BridgeConfig
import Foundation
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Synchronization
import Testing
import TestSlots

/// Real inputs and real answers that were refused, changed or left hanging
/// (issue 7, items 2 to 5), end to end through the embedded server.
@Suite(.heavy) struct EdgeTests {
    static func ledgerState(_ h: BridgeHarness, _ id: Int64) throws -> String? {
        try h.scalarText("SELECT state FROM _taskbridge_ledger WHERE legacy_id = ?", [id])
    }

    /// Claims one task and fails it (the server retries failures up to its
    /// MAX_TASK_ATTEMPTS, so callers repeat until the row shows `failed`).
    static let nulError = String(decoding: Array("boom".utf8) + [0] + Array("tail".utf8), as: UTF8.self)

    /// Fails the row's task until the row shows `failed` (the server retries a
    /// failure up to its MAX_TASK_ATTEMPTS). A function of its own: written
    /// inline in the test, the 6.3.1 compiler's SendNonSendable pass crashed.
    static func failUntilRowFailed(_ h: BridgeHarness, rowID: Int64) async throws -> Bool {
        let typeID = try await h.typeID(channel.name)
        return try await eventually(timeout: .seconds(20)) {
            try await failOne(h.tm.client, typeID: typeID, error: nulError)
            return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'failed'", [rowID]) == 1
        }
    }

    static func failOne(_ client: TaskManagerClient, typeID: Int64, error: String) async throws {
        guard let t = try await client.claimTask(workerID: "w", taskTypeID: typeID) else { return }
        _ = try await client.completeTask(id: t.id, workerID: "w", success: false, error: error)
    }

    /// A stop asked before a run began ends that run when it starts (a run
    /// that began a moment late used to clear the stop and run on, and its
    /// caller waited forever); the run after it goes on as usual.
    @Test func aStopAskedBeforeTheRunBeginsEndsIt() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            await h.stopEngine()
            let engine = h.engine
            let ended = Mutex(false)
            engine.stop()
            let run = Task {
                try? await engine.run()
                ended.withLock { $0 = true }
            }
            let stopped = try await eventually(timeout: .seconds(30)) { ended.withLock { $0 } }
            #expect(stopped, "the run ended on the stop asked before it")
            if !stopped { run.cancel() }
            h.startEngine()
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "https://y/a"}"#)
            #expect(
                try await eventually(timeout: .seconds(20)) { try Self.ledgerState(h, id) == "sent" },
                "the next run forwards as usual")
        }
    }

    @Test func pythonFalseIsALiteralNotAnFString() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let id = try h.producer().insert(
                type: channel.legacyType, parameters: "{'channel_url': 'https://y/c', 'enabled': False}")
            #expect(try await eventually { try Self.ledgerState(h, id) == "sent" })
            let taskID = try #require(
                try h.scalarInt("SELECT tm_task_id FROM _taskbridge_ledger WHERE legacy_id = ?", [id]))
            #expect(
                try await h.tm.client.getTask(id: taskID).params == ["channel_url": "https://y/c", "enabled": false])
        }
    }

    /// PHP accepts 5.0 for "number" and keys it as 5 (spec 17.3): the bridge
    /// sends what it validated and predicts PHP's key.
    @Test func wholeFloatIsSentAsAFloatAndKeyedLikePHP() async throws {
        let scored = TypeMapping(
            legacyType: "score_job", name: "PrismQ.Score", mode: .forward,
            paramSchema: ["type": "object", "properties": ["score": ["type": "number"]], "required": ["score"]])
        try await BridgeHarness.with(types: [scored]) { h in
            let id = try h.producer().insert(type: "score_job", parameters: #"{"score": 5.0}"#)
            #expect(try await eventually { try Self.ledgerState(h, id) == "sent" })
            let key = try h.scalarText("SELECT dedupe_key FROM _taskbridge_ledger WHERE legacy_id = ?", [id])
            #expect(key == DedupeKey.compute(type: "PrismQ.Score", paramsJSON: #"{"score":5}"#))
            let taskID = try #require(
                try h.scalarInt("SELECT tm_task_id FROM _taskbridge_ledger WHERE legacy_id = ?", [id]))
            #expect(try await h.tm.client.getTask(id: taskID).params == ["score": 5])
        }
    }

    @Test func numberOutOfRangeIsQuarantinedNotZeroed() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "c", "n": 1e400}"#)
            #expect(try await eventually { try Self.ledgerState(h, id) == "quarantined" })
            #expect(try h.quarantineReasons()[id] == "params_number_out_of_range")
            #expect(try await h.tm.client.listTasks().isEmpty)
        }
    }

    @Test func paramsAboveMaxParamsBytesAreQuarantinedWithTheLimitNamed() async throws {
        try await BridgeHarness.with(types: [channel], configure: { $0.taskManager.maxParamsBytes = 64 }) { h in
            let long = String(repeating: "x", count: 80)
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "\#(long)"}"#)
            #expect(try await eventually { try Self.ledgerState(h, id) == "quarantined" })
            #expect(try h.quarantineReasons()[id] == "params_too_large")
            #expect(
                try h.scalarText("SELECT detail FROM _taskbridge_quarantine WHERE legacy_id = ?", [id])?
                    .contains("max_params_bytes = 64") == true)
        }
    }

    /// A worker's error with a NUL reaches the legacy row whole.
    @Test func nulInAFailedTasksErrorIsMirroredWhole() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "nul"}"#)
            #expect(try await eventually { try Self.ledgerState(h, id) == "sent" })
            #expect(try await Self.failUntilRowFailed(h, rowID: id))
            let hex = try h.scalarText("SELECT hex(CAST(error_message AS BLOB)) FROM task_queue WHERE id = ?", [id])
            #expect(hex == "626F6F6D007461696C")  // "boom", NUL, "tail"
        }
    }

    /// A proxy's HTML 400 says nothing about the params: the row waits.
    @Test func htmlBadRequestFromAProxyIsTransient() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            proxy.set(
                .status(400, body: "<html><body><h1>400 Bad Request</h1>nginx</body></html>", contentType: "text/html"))
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "html"}"#)
            #expect(
                try await eventually {
                    try h.scalar(
                        """
                        SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'intent' AND attempts \
                        > 0
                        """,
                        [id]) == 1
                })
            #expect(try h.quarantineReasons().isEmpty)
            proxy.set(.pass)
            #expect(try await eventually(timeout: .seconds(30)) { try Self.ledgerState(h, id) == "sent" })
        }
    }

    /// An answer whose body trickles in (1 byte/s) is cut at the request
    /// deadline (5 s in the harness), so the row is retried, not held.
    @Test func trickledAnswerEndsAtTheRequestDeadline() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            proxy.set(.trickle(interval: .seconds(1)))
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "slow"}"#)
            // The answer is about 200 bytes: 200 s at 1 byte/s. The deadline ends it well before.
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    (try h.scalarText("SELECT last_error FROM _taskbridge_ledger WHERE legacy_id = ?", [id]) ?? "")
                        .contains("timed out")
                })
            proxy.set(.pass)
            #expect(try await eventually(timeout: .seconds(60)) { try Self.ledgerState(h, id) == "sent" })
        }
    }

    /// The real server answers 500 "Data too long" for what it will never
    /// store (spec 17.1). Such a row is quarantined once the thresholds pass
    /// while the type's other rows get through.
    @Test func persistentServerErrorQuarantinesOnlyTheRefusedRow() async throws {
        try await BridgeHarness.with(
            types: [channel], withProxy: true,
            configure: {
                $0.bridge.persistentErrorAttempts = 3
                $0.bridge.persistentErrorSeconds = 0
            }
        ) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            let tooLong =
                "SQLSTATE[22001]: String data, right truncated: 1406 Data too long for column 'params_json' at row 1"
            proxy.set(.failMatching(marker: "refused-row", status: 500, error: tooLong))
            let producer = try h.producer()
            let bad = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "refused-row"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND attempts > 0", [bad])
                        == 1
                })
            // Other rows of the type are accepted after the refusals began.
            let good = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "accepted-row"}"#)
            #expect(try await eventually { try Self.ledgerState(h, good) == "sent" })
            #expect(try await eventually(timeout: .seconds(60)) { try Self.ledgerState(h, bad) == "quarantined" })
            #expect(try h.quarantineReasons()[bad] == "api_persistent_error")
            let detail = try h.scalarText("SELECT detail FROM _taskbridge_quarantine WHERE legacy_id = ?", [bad]) ?? ""
            // persistent_error_attempts = 3: quarantined at the third identical refusal.
            #expect(detail.contains("Data too long") && detail.hasPrefix("3 sends failed"), "\(detail)")
        }
    }

    /// When every send fails (the API broken for everyone), rows wait.
    @Test func serverErrorForEveryRowNeverQuarantines() async throws {
        try await BridgeHarness.with(
            types: [channel], withProxy: true,
            configure: {
                $0.bridge.persistentErrorAttempts = 2
                $0.bridge.persistentErrorSeconds = 0
            }
        ) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            proxy.set(
                .status(
                    500, body: #"{"success":false,"error":"Database connection failed"}"#,
                    contentType: "application/json"))
            let id = try h.producer().insert(type: channel.legacyType, parameters: #"{"channel_url": "down"}"#)
            // Past both thresholds, yet no other row got through: still waiting.
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT attempts FROM _taskbridge_ledger WHERE legacy_id = ?", [id]) >= 3
                })
            #expect(try Self.ledgerState(h, id) == "intent")
            #expect(try h.quarantineReasons().isEmpty)
        }
    }
}
