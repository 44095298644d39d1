import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("GET /tasks/{id} and GET /tasks (spec 5.9, 5.10)", .heavy)
struct TaskQueryTests {
    @Test func getTaskReturnsOneObjectOr404() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let id = try await h.client.createTask(type: "test.a", params: ["v": "abc", "n": 5]).id
            _ = try await h.client.claimTask(workerID: "w2", taskTypeID: typeID)
            _ = try await h.client.updateProgress(id: id, workerID: "w2", progress: 50)
            _ = try await h.client.completeTask(id: id, workerID: "w2", success: true, result: ["out": "done/ü"])

            let r = try await h.raw(.GET, "/api/tasks/\(id)")
            #expect(r.status == 200)
            #expect(
                keys(r.data) == [
                    "id", "type", "status", "params", "result", "error_message", "priority", "progress", "attempts",
                    "claimed_by", "claimed_at", "completed_at", "created_at",
                ])
            let d = try #require(r.data)
            #expect(d["id"] == .int(id) && d["type"] == "test.a" && d["status"] == "completed")
            #expect(
                d["params"] == ["v": "abc", "n": 5] && d["result"] == ["out": "done/ü"] && d["error_message"] == .null)
            #expect(d["priority"] == 0 && d["progress"] == 50 && d["attempts"] == 1 && d["claimed_by"] == "w2")
            for k in ["claimed_at", "completed_at", "created_at"] {
                #expect(d[k]?.stringValue?.wholeMatch(of: /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/) != nil, "\(k)")
            }

            for path in ["/api/tasks/9999", "/api/tasks/abc", "/api/tasks/0", "/api/tasks/-1"] {
                let missing = try await h.raw(.GET, path)
                #expect(missing.status == 404 && missing.error == "Task not found", "\(path)")
            }
            await expectError(.notFound("Task not found")) { try await h.client.getTask(id: 9999) }
        }
    }

    /// Tasks: 1 a pending, 2 a claimed, 3 b completed, 4 b failed, 5 b pending,
    /// stamped with increasing `created_at` except task 2, which is newest.
    static func seed(_ h: TaskManagerHarness) async throws -> [Int64] {
        let a = try await h.registerOpenType("test.a")
        let b = try await h.registerOpenType("test.b")
        var ids: [Int64] = []
        for (i, type) in ["test.a", "test.a", "test.b", "test.b", "test.b"].enumerated() {
            ids.append(try await h.client.createTask(type: type, params: ["i": .int(Int64(i))]).id)
        }
        _ = try await h.client.claimTask(workerID: "w", taskTypeID: a, sortBy: "id", sortOrder: "DESC")
        _ = try await h.client.claimTask(workerID: "w", taskTypeID: b, sortBy: "id", sortOrder: "ASC")
        _ = try await h.client.completeTask(id: ids[2], workerID: "w", success: true)
        try await h.sql("UPDATE tasks SET attempts = 3 WHERE id = ?", [ids[3]])
        _ = try await h.client.claimTask(workerID: "w", taskTypeID: b, sortBy: "id", sortOrder: "ASC")
        _ = try await h.client.completeTask(id: ids[3], workerID: "w", success: false)
        for (i, id) in ids.enumerated() {
            let stamp = i == 1 ? "2026-01-01 00:00:09" : "2026-01-01 00:00:0\(i)"
            try await h.sql("UPDATE tasks SET created_at = ? WHERE id = ?", [stamp, id])
        }
        return ids
    }

    static func ids(_ r: RawResponse) -> [Int64] {
        r.data?["items"]?.arrayValue?.compactMap { $0["id"]?.intValue } ?? []
    }

    @Test func listOrdersNewestFirstAndFilters() async throws {
        try await TaskManagerHarness.with { h in
            let ids = try await Self.seed(h)
            let all = try await h.raw(.GET, "/api/tasks")
            #expect(all.status == 200)
            #expect(keys(all.data) == ["items", "count"])
            #expect(Self.ids(all) == [ids[1], ids[4], ids[3], ids[2], ids[0]])
            #expect(all.data?["count"] == 5)
            let first = all.data?["items"]?.arrayValue?.first
            #expect(
                keys(first) == [
                    "id", "type", "status", "priority", "progress", "attempts", "claimed_by", "created_at",
                    "completed_at",
                ])
            #expect(first?["status"] == "claimed" && first?["claimed_by"] == "w")

            let cases: [(String, [Int64])] = [
                ("status=pending", [ids[4], ids[0]]),
                ("status=pending,claimed", [ids[1], ids[4], ids[0]]),
                ("status=completed,%20failed", [ids[3], ids[2]]),
                ("status=%25ed", [ids[1], ids[3], ids[2]]),
                ("type=test.b", [ids[4], ids[3], ids[2]]),
                ("type=test.%25", [ids[1], ids[4], ids[3], ids[2], ids[0]]),
                ("type=test.a&status=pending", [ids[0]]),
                ("type=test.none", []),
                ("limit=2", [ids[1], ids[4]]),
                ("limit=2&offset=2", [ids[3], ids[2]]),
                ("offset=4", [ids[0]]),
                ("limit=0", []),
            ]
            for (query, expected) in cases {
                let r = try await h.raw(.GET, "/api/tasks?\(query)")
                #expect(r.status == 200, "\(query)")
                #expect(Self.ids(r) == expected, "\(query)")
                #expect(r.data?["count"] == .int(Int64(expected.count)), "\(query)")
            }

            let viaClient = try await h.client.listTasks(statuses: ["pending", "claimed"])
            #expect(viaClient.map(\.id) == [ids[1], ids[4], ids[0]])
            #expect(try await h.client.listTasks(type: "test.a", limit: 1).map(\.id) == [ids[1]])
            #expect(try await h.client.listTasks(limit: 2, offset: 1).map(\.id) == [ids[4], ids[3]])
        }
    }

    @Test func defaultLimitIs50() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            for i in 0..<55 { _ = try await h.client.createTask(type: "test.a", params: ["i": .int(Int64(i))]) }
            let r = try await h.raw(.GET, "/api/tasks")
            #expect(r.data?["count"] == 50)
            #expect(Self.ids(r).first == 55)
        }
    }
}
