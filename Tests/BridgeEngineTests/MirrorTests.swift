import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// The mirror makes progress under faults (issue 8, item 5).
@Suite(.serialized, .heavy) struct MirrorTests {
    static func completeAll(_ h: BridgeHarness, _ name: String) async throws {
        let typeID = try await h.typeID(name)
        let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
        while try await api.runOnce() != nil {}
    }

    /// One type's failing list does not stop another type's rows.
    @Test func oneTypesFailureDoesNotStopAnother() async throws {
        var forwardVideo = video
        forwardVideo.mode = .forward
        try await BridgeHarness.with(types: [channel, forwardVideo], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            _ = try await h.typeID(forwardVideo.name)
            let producer = try h.producer()
            let c = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "c"}"#)
            let v = try producer.insert(type: forwardVideo.legacyType, parameters: #"{"video_url": "v"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 2
                })
            // Every read about the channel type fails; the video type's work.
            proxy.set(
                .matching(
                    "Channel", .status(503, body: #"{"success":false,"error":"down"}"#, contentType: "application/json")
                ))
            try await Self.completeAll(h, channel.name)
            try await Self.completeAll(h, forwardVideo.name)
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [v]) == 1
                })
            proxy.set(.pass)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [c]) == 1
                })
        }
    }

    /// A 429 on creates pauses sends, not mirroring.
    @Test func rateLimitedSendsDoNotPauseTheMirror() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            let producer = try h.producer()
            let placed = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "placed"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 1
                })
            proxy.set(.matching("POST /api/tasks", .rateLimited(retryAfter: 120)))
            let waiting = try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "waiting"}"#)
            #expect(
                try await eventually {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND attempts > 0", [waiting]) == 1
                })
            // Sends are paused for two minutes; the placed row is still mirrored.
            try await Self.completeAll(h, channel.name)
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM task_queue WHERE id = ? AND status = 'completed'", [placed]) == 1
                })
            #expect(
                try h.scalar(
                    "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'intent'", [waiting]) == 1)
        }
    }

    /// Under a fault mix (delays up to 2 s, 5xx, HTML, garbage) and engine
    /// restarts, every finished task still reaches its row.
    @Test func mirrorFinishesUnderChaosAndRestarts() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true) { h in
            let proxy = try #require(h.proxy)
            _ = try await h.typeID(channel.name)
            let producer = try h.producer()
            for i in 0..<30 {
                try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "chaos-\#(i)"}"#)
            }
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 30
                })
            try await Self.completeAll(h, channel.name)
            proxy.set(.chaos)
            var restarts = 0
            let done = try await eventually(timeout: .seconds(90), interval: .milliseconds(200)) {
                if restarts < 5 {
                    restarts += 1
                    await h.stopEngine()
                    h.startEngine()
                }
                return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 30
            }
            let mirrored = try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'")
            #expect(done, "\(mirrored) of 30 mirrored")
        }
    }
}

/// The mirror planner without a socket.
@Suite struct MirrorPlannerTests {
    func entry(_ id: Int64, task: Int64, status: String, next: Double = 0) throws -> LedgerEntry {
        LedgerEntry(
            legacyID: id, taskType: "t", tmType: "T", state: .sent, tmTaskID: task, tmStatus: status,
            claimedAt: "2026-12-01T00:00:00.000000+00:00", nextAttemptAt: next)
    }

    @Test func claimedListWritesWithoutAGetAndTheRestIsFetchedInOrder() throws {
        var listing = MirrorPlanner.Listing()
        listing.claimed = [10: 1]
        listing.finished = [11]
        let listed = [try entry(1, task: 10, status: "pending"), try entry(2, task: 11, status: "claimed")]
        var candidates = LegacyQueueStore.MirrorCandidates()
        candidates.edges = [try entry(3, task: 12, status: "pending"), try entry(1, task: 10, status: "pending")]
        candidates.due = [try entry(4, task: 13, status: "pending")]
        let plan = MirrorPlanner.plan(listing: listing, listed: listed, candidates: candidates, now: 100, budget: 10)
        #expect(plan.observations.map(\.legacyID) == [1])
        #expect(plan.observations.first?.tmStatus == "claimed")
        #expect(plan.fetch.map(\.legacyID) == [2, 3, 4], "listed first, each row once")
        let small = MirrorPlanner.plan(listing: listing, listed: listed, candidates: candidates, now: 100, budget: 1)
        #expect(small.fetch.map(\.legacyID) == [2])
    }

    @Test func alreadyClaimedRowsAreRewrittenOnlyWhenTheirRecheckIsDue() throws {
        var listing = MirrorPlanner.Listing()
        listing.claimed = [10: 1]
        let fresh = try entry(1, task: 10, status: "claimed", next: 200)
        #expect(
            MirrorPlanner.plan(listing: listing, listed: [fresh], candidates: .init(), now: 100, budget: 10)
                .observations.isEmpty)
        let due = try entry(1, task: 10, status: "claimed", next: 50)
        #expect(
            MirrorPlanner.plan(listing: listing, listed: [due], candidates: .init(), now: 100, budget: 10).observations
                .count == 1)
    }

    @Test func backoffIsTheMirrorsOwn() {
        var b = MirrorPlanner.Backoff()
        b.record(successes: 0, failures: 3, retryAfter: nil, now: 0)
        #expect(b.until == 0.5)
        b.record(successes: 0, failures: 3, retryAfter: nil, now: 0)
        #expect(b.until == 1)
        b.record(successes: 1, failures: 3, retryAfter: nil, now: 0)
        #expect(b.until == 0 && b.failures == 0)
        b.record(successes: 0, failures: 1, retryAfter: 7, now: 10)
        #expect(b.until == 17)
        for _ in 0..<20 { b.record(successes: 0, failures: 1, retryAfter: nil, now: 0) }
        // Capped at 4 s: mirroring resumes within that long of the API answering (issue 15).
        #expect(b.until == 4, "capped")
    }
}
