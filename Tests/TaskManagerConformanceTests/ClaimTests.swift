import Foundation
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("POST /tasks/claim (spec 5.6)", .heavy)
struct ClaimTests {
    /// Five tasks with priorities [0, 5, 10, 5, 0], all stamped with the same
    /// `created_at` second so only the id can break FIFO/LIFO ties.
    static func seed(_ h: TaskManagerHarness) async throws -> (typeID: Int64, ids: [Int64]) {
        let typeID = try await h.registerOpenType()
        var ids: [Int64] = []
        for (i, p) in [0, 5, 10, 5, 0].enumerated() {
            ids.append(try await h.client.createTask(type: "test.a", params: ["i": .int(Int64(i))], priority: p).id)
        }
        try await h.sql("UPDATE tasks SET created_at = '2026-01-01 00:00:00'")
        return (typeID, ids)
    }

    static func drain(
        _ h: TaskManagerHarness, _ typeID: Int64, sortBy: String, sortOrder: String
    ) async throws -> [Int64] {
        var order: [Int64] = []
        while let t = try await h.client.claimTask(
            workerID: "w", taskTypeID: typeID, sortBy: sortBy, sortOrder: sortOrder)
        {
            order.append(t.id)
        }
        return order
    }

    @Test(arguments: [
        ("created_at", "ASC", [0, 1, 2, 3, 4]),
        ("created_at", "DESC", [4, 3, 2, 1, 0]),
        ("priority", "DESC", [2, 1, 3, 0, 4]),
        ("priority", "ASC", [0, 4, 1, 3, 2]),
        ("id", "ASC", [0, 1, 2, 3, 4]),
        ("id", "desc", [4, 3, 2, 1, 0]),
        ("attempts", "ASC", [0, 1, 2, 3, 4]),
    ])
    func claimOrderIsDeterministicWithinOneSecond(sortBy: String, sortOrder: String, expected: [Int]) async throws {
        try await TaskManagerHarness.with { h in
            let (typeID, ids) = try await Self.seed(h)
            let order = try await Self.drain(h, typeID, sortBy: sortBy, sortOrder: sortOrder)
            #expect(order == expected.map { ids[$0] })
        }
    }

    @Test(arguments: [(ClaimPolicy.fifo, 0), (.lifo, 4), (.priority, 2)])
    func policiesMapToSortOrders(policy: ClaimPolicy, firstIndex: Int) async throws {
        try await TaskManagerHarness.with { h in
            let (typeID, ids) = try await Self.seed(h)
            let first = try #require(try await h.client.claimTask(workerID: "w", taskTypeID: typeID, policy: policy))
            #expect(first.id == ids[firstIndex])
        }
    }

    @Test func fifoFollowsCreatedAtBeforeId() async throws {
        try await TaskManagerHarness.with { h in
            let (typeID, ids) = try await Self.seed(h)
            try await h.sql("UPDATE tasks SET created_at = '2025-12-31 23:59:59' WHERE id = ?", [ids[3]])
            let first = try #require(try await h.client.claimTask(workerID: "w", taskTypeID: typeID, policy: .fifo))
            #expect(first.id == ids[3])
        }
    }

    @Test(arguments: [(ClaimPolicy.fifo, 0), (.lifo, 2)])
    func expiredLeasesCompeteWithPendingTasksInOrder(policy: ClaimPolicy, expectedIndex: Int) async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            var ids: [Int64] = []
            for i in 0..<3 {
                ids.append(try await h.client.createTask(type: "test.a", params: ["i": .int(Int64(i))]).id)
            }
            try await h.sql("UPDATE tasks SET created_at = '2026-01-01 00:00:00'")
            // Tasks 0 and 2 are held by w1 under leases that ran out an hour ago.
            for id in [ids[0], ids[2]] {
                try await h.sql(
                    """
                    UPDATE tasks SET status = 'claimed', claimed_by = 'w1', claimed_at_epoch = ?, attempts = 1 WHERE \
                    id = ?
                    """,
                    [Date().timeIntervalSince1970 - 3600, id])
            }
            let claimed = try #require(try await h.client.claimTask(workerID: "w2", taskTypeID: typeID, policy: policy))
            #expect(claimed.id == ids[expectedIndex])
            #expect(claimed.attempts == 2)
        }
    }

    @Test func claimPayloadAndStoredState() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let created = try await h.client.createTask(
                type: "test.a", params: ["v": "ok", "nested": ["b": 1, "a": 2]], priority: 3)
            let r = try await h.rawJSON(
                .POST, "/api/tasks/claim", ["worker_id": "  w1 ", "task_type_id": .int(typeID)])
            #expect(r.status == 200 && r.json?["message"] == "Success")
            #expect(keys(r.data) == ["id", "type", "params", "attempts", "priority", "message"])
            #expect(r.data?["id"] == .int(created.id) && r.data?["type"] == "test.a")
            #expect(r.data?["attempts"] == 1 && r.data?["priority"] == 3)
            #expect(r.data?["message"] == "Task claimed successfully")
            #expect(keys(r.data?["params"]?["nested"]) == ["b", "a"])

            let task = try await h.client.getTask(id: created.id)
            #expect(task.status == .claimed && task.claimedBy == "w1" && task.attempts == 1 && task.claimedAt != nil)
        }
    }

    @Test func claimOnlyTakesTheRequestedType() async throws {
        try await TaskManagerHarness.with { h in
            let a = try await h.registerOpenType("test.type.a")
            let b = try await h.registerOpenType("test.type.b")
            _ = try await h.client.createTask(type: "test.type.a", params: ["x": 1], priority: 100)
            let tb = try await h.client.createTask(type: "test.type.b", params: ["x": 1])
            let claimed = try #require(try await h.client.claimTask(workerID: "w", taskTypeID: b, policy: .priority))
            #expect(claimed.id == tb.id && claimed.type == "test.type.b")
            #expect(try await h.client.claimTask(workerID: "w", taskTypeID: b) == nil)
            #expect(try await h.client.claimTask(workerID: "w", taskTypeID: a) != nil)
        }
    }

    @Test func emptyQueueIs404NoAvailableTasks() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            for body: JSONValue in [
                ["worker_id": "w", "task_type_id": .int(typeID)],
                ["worker_id": "w", "task_type_id": 9999],
            ] {
                let r = try await h.rawJSON(.POST, "/api/tasks/claim", body)
                #expect(r.status == 404 && r.error == "No available tasks", "\(body)")
                #expect(keys(r.json) == ["success", "error", "timestamp"])
            }
            #expect(try await h.client.claimTask(workerID: "w", taskTypeID: typeID) == nil)
        }
    }

    @Test func claimValidationErrors() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            _ = try await h.client.createTask(type: "test.a", params: ["a": 1])
            let t: JSONValue = .int(typeID)
            let detailed: [(JSONValue, [String])] = [
                (["task_type_id": t], ["Worker ID is required"]),
                (["worker_id": "", "task_type_id": t], ["Worker ID is required"]),
                (["worker_id": 123, "task_type_id": t], ["Field 'worker_id' must be of type string"]),
                (["worker_id": ["w"], "task_type_id": t], ["Field 'worker_id' must be of type string"]),
            ]
            for (body, details) in detailed {
                let r = try await h.rawJSON(.POST, "/api/tasks/claim", body)
                #expect(r.status == 400 && r.error == "Validation failed" && r.details == details, "\(body)")
            }
            let plain: [(JSONValue, String)] = [
                (["worker_id": "w"], "Missing required field: task_type_id"),
                (["worker_id": "w", "task_type_id": nil], "Missing required field: task_type_id"),
                (["worker_id": "w", "task_type_id": -1], "task_type_id must be a positive integer"),
                (["worker_id": "w", "task_type_id": "abc"], "task_type_id must be a positive integer"),
                (
                    ["worker_id": "w", "task_type_id": t, "sort_by": "name"],
                    "Invalid sort_by field. Allowed values: created_at, priority, id, attempts"
                ),
                (
                    ["worker_id": "w", "task_type_id": t, "sort_by": "created_at; DROP TABLE tasks"],
                    "Invalid sort_by field. Allowed values: created_at, priority, id, attempts"
                ),
                (
                    ["worker_id": "w", "task_type_id": t, "sort_order": "UP"],
                    "Invalid sort_order. Allowed values: ASC, DESC"
                ),
            ]
            for (body, message) in plain {
                let r = try await h.rawJSON(.POST, "/api/tasks/claim", body)
                #expect(r.status == 400 && r.error == message, "\(body)")
                #expect(r.json?["details"] == nil, "\(body)")
            }
            await expectValidation("Invalid sort_by field. Allowed values: created_at, priority, id, attempts") {
                try await h.client.claimTask(workerID: "w", taskTypeID: typeID, sortBy: "name", sortOrder: "ASC")
            }
            await expectValidation("task_type_id must be a positive integer") {
                try await h.client.claimTask(workerID: "w", taskTypeID: 0)
            }
            await expectValidation("Validation failed", details: ["Worker ID is required"]) {
                try await h.client.claimTask(workerID: "", taskTypeID: typeID)
            }
            // None of the rejected requests claimed the task.
            #expect(try await h.client.getTask(id: 1).status == .pending)
        }
    }

    @Test(arguments: [JSONValue.string("1"), .double(1.9), .string("1abc")])
    func taskTypeIdGoesThroughIntval(_ raw: JSONValue) async throws {
        try await TaskManagerHarness.with { h in
            #expect(try await h.registerOpenType() == 1)
            _ = try await h.client.createTask(type: "test.a", params: ["a": 1])
            let r = try await h.rawJSON(.POST, "/api/tasks/claim", ["worker_id": "w", "task_type_id": raw])
            #expect(r.status == 200 && r.data?["id"] == 1)
        }
    }

    @Test func typePatternFiltersByLike() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType("test.pattern")
            _ = try await h.client.createTask(type: "test.pattern", params: ["a": 1])
            _ = try await h.client.createTask(type: "test.pattern", params: ["a": 2])
            #expect(try await h.client.claimTask(workerID: "w", taskTypeID: typeID, typePattern: "other.%") == nil)
            let miss = try await h.rawJSON(
                .POST, "/api/tasks/claim", ["worker_id": "w", "task_type_id": .int(typeID), "type_pattern": "other.%"])
            #expect(miss.status == 404 && miss.error == "No available tasks")
            let hit = try #require(
                try await h.client.claimTask(workerID: "w", taskTypeID: typeID, typePattern: "test.%"))
            #expect(hit.type.hasPrefix("test."))
            // An empty pattern is ignored.
            #expect(try await h.client.claimTask(workerID: "w", taskTypeID: typeID, typePattern: "") != nil)
        }
    }
}
