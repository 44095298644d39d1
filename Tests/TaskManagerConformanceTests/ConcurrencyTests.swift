import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("Concurrent workers and creates", .heavy)
struct ConcurrencyTests {
    @Test func parallelWorkersNeverShareATaskAndDrainTheQueue() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let total = 60
            var created: Set<Int64> = []
            for i in 0..<total {
                created.insert(try await h.client.createTask(type: "test.a", params: ["i": .int(Int64(i))]).id)
            }

            // Each worker has its own client (own connection pool), like
            // separate worker processes would.
            let clients = try (0..<8).map { _ in try h.makeClient() }
            let perWorker = try await withThrowingTaskGroup(of: (String, [Int64]).self) { group in
                for (n, client) in clients.enumerated() {
                    group.addTask {
                        let worker = "w\(n)"
                        var mine: [Int64] = []
                        while let t = try await client.claimTask(
                            workerID: worker, taskTypeID: typeID, policy: n % 2 == 0 ? .fifo : .lifo)
                        {
                            mine.append(t.id)
                        }
                        return (worker, mine)
                    }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            for c in clients { await c.shutdown() }

            let all = perWorker.values.flatMap { $0 }
            #expect(all.count == total)
            #expect(Set(all) == created)
            // The server agrees about who holds what.
            for (worker, ids) in perWorker {
                for id in ids.prefix(3) { #expect(try await h.client.getTask(id: id).claimedBy == worker) }
            }
            let claimed = try await h.raw(.GET, "/api/tasks?status=claimed&limit=1000")
            #expect(claimed.data?["count"] == .int(Int64(total)))
        }
    }

    @Test func identicalConcurrentCreatesMakeOneTask() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let params: JSONValue = ["url": "https://example.com/video/1", "n": 5]
            let results = try await withThrowingTaskGroup(of: CreateResult.self) { group in
                for _ in 0..<50 { group.addTask { try await h.client.createTask(type: "test.a", params: params) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 50)
            #expect(Set(results.map(\.id)).count == 1)
            #expect(results.filter { !$0.deduplicated }.count == 1)
            #expect(try await h.taskCount() == 1)
        }
    }

    @Test func identicalConcurrentRawCreatesAllSucceed() async throws {
        // Over separate connections, so requests really overlap on the server.
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let responses = try await withThrowingTaskGroup(of: RawResponse.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["same": true]])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(responses.allSatisfy { $0.status == 200 })
            #expect(Set(responses.compactMap { $0.data?["id"] }).count == 1)
            #expect(responses.filter { $0.data?["deduplicated"] == true }.count == 49)
            #expect(try await h.taskCount() == 1)
        }
    }
}
