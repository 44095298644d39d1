import Testing
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import TestSlots

@Suite(.heavy) struct SmokeTests {
    @Test func registerCreateClaimComplete() async throws {
        try await TaskManagerHarness.with { h in
            let reg = try await h.client.registerTaskType(
                name: "test.a", version: "1.0.0", paramSchema: ["type": "object"])
            #expect(reg.created)
            let created = try await h.client.createTask(type: "test.a", params: ["v": "abc", "n": 5])
            #expect(created.dedupeKey == "ed0f58bd11d4fc850efd4aa7c3e236ade38fbb3e1b1f47540c365d0984be6a46")
            let again = try await h.client.createTask(type: "test.a", params: ["v": "abc", "n": 5])
            #expect(again.deduplicated && again.id == created.id)
            let claimed = try #require(try await h.client.claimTask(workerID: "w1", taskTypeID: reg.id))
            #expect(claimed.id == created.id && claimed.attempts == 1)
            #expect(try await h.client.claimTask(workerID: "w1", taskTypeID: reg.id) == nil)
            let done = try await h.client.completeTask(
                id: claimed.id, workerID: "w1", success: true, result: ["out": "done/ü"])
            #expect(done.status == "completed")
            let task = try await h.client.getTask(id: created.id)
            #expect(task.status == .completed && task.result == ["out": "done/ü"])
        }
    }
}
