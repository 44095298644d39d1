import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer
import Testing
import TestSlots

@Suite("Leases, completion, retries and progress (spec 5.7, 5.8, 6)", .heavy)
struct LifecycleTests {
    static func claimedTask(_ h: TaskManagerHarness, worker: String = "w1") async throws -> (typeID: Int64, id: Int64) {
        let typeID = try await h.registerOpenType()
        let id = try await h.client.createTask(type: "test.a", params: ["job": 1]).id
        let claimed = try #require(try await h.client.claimTask(workerID: worker, taskTypeID: typeID))
        #expect(claimed.id == id)
        return (typeID, id)
    }

    /// Leases run on the server's clock, moved forward here: no test waits for
    /// a real lease to run out, so none depends on how fast the machine is.
    /// The clock stops short of the lease by ten minutes, which no loaded
    /// machine spends between two requests (a one-second margin did, in CI).
    @Test func expiredLeaseIsReclaimedAndTheOldHolderGets403() async throws {
        let clock = ServerClock()
        try await TaskManagerHarness.with(configure: {
            $0.claimTimeout = 3600; $0.clock = clock
        }) { h in
            let (typeID, id) = try await Self.claimedTask(h)
            clock.advance(by: 3000)
            #expect(
                try await h.client.claimTask(workerID: "w2", taskTypeID: typeID) == nil,
                "reclaimed before the lease ran out")
            clock.advance(by: 601)
            let second = try await h.client.claimTask(workerID: "w2", taskTypeID: typeID)
            #expect(second?.id == id && second?.attempts == 2)
            #expect(try await h.client.getTask(id: id).claimedBy == "w2")

            await expectError(.forbidden("Task is claimed by another worker")) {
                try await h.client.completeTask(id: id, workerID: "w1", success: true)
            }
            await expectError(.forbidden("Task is claimed by another worker")) {
                try await h.client.updateProgress(id: id, workerID: "w1", progress: 10)
            }
            let raw = try await h.rawJSON(.POST, "/api/tasks/\(id)/complete", ["worker_id": "w1", "success": true])
            #expect(raw.status == 403 && raw.error == "Task is claimed by another worker")
            #expect(try await h.client.completeTask(id: id, workerID: "w2", success: true).status == "completed")
        }
    }

    @Test func progressDoesNotRenewTheLease() async throws {
        let clock = ServerClock()
        try await TaskManagerHarness.with(configure: {
            $0.claimTimeout = 60; $0.clock = clock
        }) { h in
            let (typeID, id) = try await Self.claimedTask(h)
            // Progress at 40 s; if it renewed the lease, the task would stay
            // w1's until 100 s. It is free at 61 s: the lease counts from the claim.
            clock.advance(by: 40)
            _ = try await h.client.updateProgress(id: id, workerID: "w1", progress: 50)
            clock.advance(by: 21)
            let second = try await h.client.claimTask(workerID: "w2", taskTypeID: typeID)
            #expect(second?.id == id)
            let task = try await h.client.getTask(id: id)
            #expect(task.claimedBy == "w2" && task.attempts == 2)
            // Progress is not reset by the re-claim.
            #expect(task.progress == 50)
        }
    }

    @Test func expiredButUnclaimedLeaseCanStillBeCompleted() async throws {
        try await TaskManagerHarness.with(configure: { $0.claimTimeout = 60 }) { h in
            let (_, id) = try await Self.claimedTask(h)
            try await h.sql("UPDATE tasks SET claimed_at_epoch = claimed_at_epoch - 3600 WHERE id = ?", [id])
            #expect(try await h.client.completeTask(id: id, workerID: "w1", success: true).status == "completed")
        }
    }

    @Test func failuresRetryTwiceThenFailOnTheThirdAttempt() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let id = try await h.client.createTask(type: "test.a", params: ["job": 1]).id
            var statuses: [String] = []
            for attempt in 1...3 {
                let claimed = try #require(try await h.client.claimTask(workerID: "w\(attempt)", taskTypeID: typeID))
                #expect(claimed.id == id && claimed.attempts == Int64(attempt))
                let r = try await h.rawJSON(
                    .POST, "/api/tasks/\(id)/complete",
                    ["worker_id": .string("w\(attempt)"), "success": false, "error": .string("boom \(attempt)")])
                #expect(r.status == 200)
                #expect(keys(r.data) == ["id", "status", "message"])
                #expect(r.data?["id"] == .int(id) && r.data?["message"] == "Task completed")
                statuses.append(r.data?["status"]?.stringValue ?? "?")
                if attempt < 3 {
                    let task = try await h.client.getTask(id: id)
                    #expect(task.status == .pending && task.claimedBy == nil && task.claimedAt == nil)
                    #expect(task.errorMessage == "boom \(attempt)")
                }
            }
            #expect(statuses == ["pending (retry)", "pending (retry)", "failed"])
            #expect(try await h.client.claimTask(workerID: "w4", taskTypeID: typeID) == nil)
            let task = try await h.client.getTask(id: id)
            #expect(
                task.status == .failed && task.attempts == 3 && task.errorMessage == "boom 3" && task.completedAt != nil
            )
        }
    }

    @Test func leaseExpiryReclaimsAreNotCappedByMaxAttempts() async throws {
        try await TaskManagerHarness.with(configure: {
            $0.maxAttempts = 1; $0.claimTimeout = 60
        }) { h in
            let (typeID, id) = try await Self.claimedTask(h)
            for attempt in 2...3 {
                try await h.sql("UPDATE tasks SET claimed_at_epoch = claimed_at_epoch - 3600 WHERE id = ?", [id])
                let again = try #require(try await h.client.claimTask(workerID: "w\(attempt)", taskTypeID: typeID))
                #expect(again.id == id && again.attempts == Int64(attempt))
            }
            #expect(try await h.client.completeTask(id: id, workerID: "w3", success: false).status == "failed")
        }
    }

    @Test func maxAttemptsIsConfigurable() async throws {
        try await TaskManagerHarness.with(configure: { $0.maxAttempts = 1 }) { h in
            let (_, id) = try await Self.claimedTask(h)
            #expect(try await h.client.completeTask(id: id, workerID: "w1", success: false).status == "failed")
        }
    }

    @Test func completionErrors() async throws {
        try await TaskManagerHarness.with { h in
            let (typeID, id) = try await Self.claimedTask(h)
            let pending = try await h.client.createTask(type: "test.a", params: ["job": 2]).id

            await expectError(.forbidden("Task is claimed by another worker")) {
                try await h.client.completeTask(id: id, workerID: "w2", success: true)
            }
            await expectValidation("Task is not in claimed state") {
                try await h.client.completeTask(id: pending, workerID: "w1", success: true)
            }
            await expectError(.notFound("Task not found")) {
                try await h.client.completeTask(id: 9999, workerID: "w1", success: true)
            }

            let missing: [(JSONValue, String)] = [
                (["success": true], "Missing required field: worker_id"),
                (["worker_id": "w1"], "Missing required field: success"),
                (["worker_id": "w1", "success": nil], "Missing required field: success"),
            ]
            for (body, message) in missing {
                let r = try await h.rawJSON(.POST, "/api/tasks/\(id)/complete", body)
                #expect(r.status == 400 && r.error == message && r.json?["details"] == nil, "\(body)")
            }
            let unknown = try await h.rawJSON(.POST, "/api/tasks/9999/complete", ["worker_id": "w1", "success": true])
            #expect(unknown.status == 404 && unknown.error == "Task not found")
            let notNumeric = try await h.rawJSON(
                .POST, "/api/tasks/abc/complete", ["worker_id": "w1", "success": true])
            #expect(notNumeric.status == 404 && notNumeric.error == "Task not found")

            #expect(try await h.client.completeTask(id: id, workerID: "w1", success: true).status == "completed")
            let second = try await h.rawJSON(.POST, "/api/tasks/\(id)/complete", ["worker_id": "w1", "success": true])
            #expect(second.status == 400 && second.error == "Task is not in claimed state")
            await expectValidation("Task is not in claimed state") {
                try await h.client.completeTask(id: id, workerID: "w1", success: false)
            }
            #expect(try await h.client.getTask(id: id).status == .completed)
            _ = typeID
        }
    }

    @Test func completionFollowsPHPTruthinessAndStoresFalsyResultsAsNull() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            var ids: [Int64] = []
            for i in 0..<3 {
                ids.append(try await h.client.createTask(type: "test.a", params: ["i": .int(Int64(i))]).id)
            }
            for _ in ids { _ = try await h.client.claimTask(workerID: "w1", taskTypeID: typeID) }

            // The string "false" is truthy in PHP; the worker id is trimmed.
            let r = try await h.rawJSON(
                .POST, "/api/tasks/\(ids[0])/complete",
                ["worker_id": " w1 ", "success": "false", "result": [:], "error": "kept"])
            #expect(r.data?["status"] == "completed")
            var task = try await h.client.getTask(id: ids[0])
            #expect(task.status == .completed && task.errorMessage == "kept")
            #expect(try await h.raw(.GET, "/api/tasks/\(ids[0])").data?["result"] == .null)

            _ = try await h.rawJSON(
                .POST, "/api/tasks/\(ids[1])/complete", ["worker_id": "w1", "success": 0, "result": 0])
            task = try await h.client.getTask(id: ids[1])
            #expect(task.status == .pending)
            #expect(try await h.raw(.GET, "/api/tasks/\(ids[1])").data?["result"] == .null)

            let result: JSONValue = ["out": "done/ü", "list": [1, 2.5, nil]]
            _ = try await h.client.completeTask(id: ids[2], workerID: "w1", success: true, result: result)
            let raw = try await h.raw(.GET, "/api/tasks/\(ids[2])")
            #expect(raw.text.contains(#""result":{"out":"done/ü","list":[1,2.5,null]}"#))
        }
    }

    @Test func progressUpdatesAndValidation() async throws {
        try await TaskManagerHarness.with { h in
            let (_, id) = try await Self.claimedTask(h)
            let pending = try await h.client.createTask(type: "test.a", params: ["job": 2]).id

            let ok = try await h.rawJSON(
                .POST, "/api/tasks/\(id)/progress", ["worker_id": "w1", "progress": 50, "message": "half"])
            #expect(ok.status == 200)
            #expect(keys(ok.data) == ["id", "progress", "message"])
            #expect(ok.data?["id"] == .int(id) && ok.data?["progress"] == 50)
            #expect(ok.data?["message"] == "Task progress updated successfully")
            #expect(try await h.client.getTask(id: id).progress == 50)

            for value in [0, 100] {
                #expect(
                    try await h.client.updateProgress(id: id, workerID: "w1", progress: value).progress == Int64(value))
            }

            let invalid: [(JSONValue, [String])] = [
                (["worker_id": "w1", "progress": 101], ["Field 'progress' must be at most 100"]),
                (["worker_id": "w1", "progress": -1], ["Field 'progress' must be at least 0"]),
                (["worker_id": "w1", "progress": "50"], ["Field 'progress' must be of type integer"]),
                (["worker_id": "w1", "progress": 50.5], ["Field 'progress' must be of type integer"]),
                (["worker_id": "w1", "progress": 50.0], ["Field 'progress' must be of type integer"]),
                (["worker_id": "w1"], ["Progress must be between 0 and 100"]),
                (["progress": 10], ["Worker ID is required"]),
                (["worker_id": 7, "progress": 10], ["Field 'worker_id' must be of type string"]),
                ([:], ["Worker ID is required", "Progress must be between 0 and 100"]),
            ]
            for (body, details) in invalid {
                let r = try await h.rawJSON(.POST, "/api/tasks/\(id)/progress", body)
                #expect(r.status == 400 && r.error == "Validation failed" && r.details == details, "\(body)")
            }
            await expectValidation("Validation failed", details: ["Field 'progress' must be at most 100"]) {
                try await h.client.updateProgress(id: id, workerID: "w1", progress: 150)
            }
            #expect(try await h.client.getTask(id: id).progress == 100)

            await expectError(.notFound("Task not found")) {
                try await h.client.updateProgress(id: 9999, workerID: "w1", progress: 1)
            }
            await expectValidation("Task is not in claimed state") {
                try await h.client.updateProgress(id: pending, workerID: "w1", progress: 1)
            }
            await expectError(.forbidden("Task is claimed by another worker")) {
                try await h.client.updateProgress(id: id, workerID: "w2", progress: 1)
            }
        }
    }
}
