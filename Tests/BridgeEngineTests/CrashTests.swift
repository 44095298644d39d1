import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// The bridge as a real child process, killed with SIGKILL at the two
/// dangerous moments of forwarding (PRODUCT.md invariants 1 and 3).
@Suite(.serialized, .heavy) struct CrashTests {
    @Test func killedAfterClaimingBeforeSending() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            proxy.set(.status(503, body: "down"))
            let child = try BridgeProcess(harness: h)
            try child.start()
            let producer = try h.producer()
            #expect(try await eventually { (try? h.scalar("SELECT COUNT(*) FROM _taskbridge_mode")) == 1 })
            for i in 0..<20 {
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "k\#(i)"}"#)
            }
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent'") == 20
                })
            await child.kill()
            #expect(try await h.tm.client.listTasks(limit: 100).isEmpty)
            proxy.set(.pass)
            let again = try BridgeProcess(harness: h)
            try again.start()
            defer { Task { await again.kill() } }
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 20
                })
            #expect(try await h.tm.client.listTasks(limit: 100).count == 20)
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 0)
        }
    }

    @Test func killedAfterSendingBeforeRecording() async throws {
        try await BridgeHarness.with(types: [channel], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            let child = try BridgeProcess(harness: h)
            try child.start()
            _ = try await h.typeID(channel.name)
            proxy.set(.swallowResponse)
            let producer = try h.producer()
            for i in 0..<20 {
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "s\#(i)"}"#)
            }
            // The server has every task; the bridge heard back about none.
            let reached = try await eventually(timeout: .seconds(20)) {
                try await h.tm.client.listTasks(limit: 100).count == 20
            }
            #expect(
                reached, "proxy saw \(proxy.count("POST /api/tasks")) creates; child: \(child.stderrText.suffix(3000))")
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'intent'") == 20)
            await child.kill()
            proxy.set(.pass)
            let again = try BridgeProcess(harness: h)
            try again.start()
            defer { Task { await again.kill() } }
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 20
                })
            let tasks = try await h.tm.client.listTasks(limit: 100)
            #expect(tasks.count == 20, "a re-send after the crash created a duplicate")
            #expect(try h.scalar("SELECT COUNT(DISTINCT tm_task_id) FROM _taskbridge_ledger") == 20)
            // Every re-send came back `deduplicated` onto the row's own task,
            // and every row has unique params: no collapse happened (issue 8, item 2).
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE collapsed = 1") == 0)
            // Everything still completes and mirrors.
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    while try await api.runOnce() != nil {}
                    return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 20
                })
        }
    }

    @Test func secondBridgeOnTheSameFileRefuses() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            let first = try BridgeProcess(harness: h)
            try first.start()
            defer { Task { await first.kill() } }
            #expect(try await eventually { (try? h.scalar("SELECT COUNT(*) FROM _taskbridge_mode")) == 1 })
            let second = try BridgeProcess(harness: h)
            try second.start()
            let status = try await second.waitForExit(timeout: .seconds(20))
            #expect(status == 3)
            #expect(second.stderrText.contains("another taskbridge is already running"))
        }
    }

    @Test func sigtermStopsGracefullyWithExitZero() async throws {
        try await BridgeHarness.with(types: [channel], startEngine: false) { h in
            let child = try BridgeProcess(harness: h)
            try child.start()
            #expect(try await eventually { (try? h.scalar("SELECT COUNT(*) FROM _taskbridge_mode")) == 1 })
            child.terminate()
            #expect(try await child.waitForExit(timeout: .seconds(20)) == 0)
            // (Key leaks are tested where a server echoes the key: RunTests.)
        }
    }
}
