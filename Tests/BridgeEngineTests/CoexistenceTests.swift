import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerModel
import Synchronization
import Testing
import TestSlots

/// PrismQ's legacy workers claim any queued row whatever its type. These
/// tests run them unchanged next to producers and the bridge.
@Suite(.serialized, .heavy) struct CoexistenceTests {
    /// Producers insert forward and off rows for a while; legacy workers run
    /// the BaseWorker claim SQL (no task_type filter); API workers execute
    /// forward tasks.
    @Test func legacyWorkersNeverExecuteForwardRows() async throws {
        try await BridgeHarness.with(types: [channel, video]) { h in
            let log = ExecutionLog()
            let channelID = try await h.typeID(channel.name)
            // Sized by rows, not by time: two producers, 150 rows each,
            // alternating types (75 forward and 75 off each); workers run
            // until both producers are done, then the drain below.
            let rowsPerProducer = Int(ProcessInfo.processInfo.environment["COEXIST_ROWS"] ?? "150") ?? 150
            let producersDone = SharedCounter()
            let legacyForward = SharedCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<2 {
                    group.addTask {
                        defer { producersDone.add() }
                        let producer = try h.producer()
                        for i in 0..<rowsPerProducer {
                            let type = i % 2 == 0 ? "youtube_channel_scrape" : "youtube_video_scrape"
                            let key = type == "youtube_channel_scrape" ? "channel_url" : "video_url"
                            try producer.insert(
                                type: type, parameters: #"{"\#(key)": "https://youtube.com/p\#(p)-\#(i)"}"#,
                                style: LegacyProducer.Style.allCases[i % 3])
                            try await Task.sleep(for: .milliseconds(5))
                        }
                        try producer.close()
                    }
                }
                for w in 0..<3 {
                    group.addTask {
                        let worker = try LegacyWorker(
                            path: h.legacyPath, workerID: "legacy-\(w)", strategy: ["LIFO", "FIFO", "PRIORITY"][w])
                        while producersDone.value < 2 {
                            if let c = try worker.claim() {
                                await log.legacyExecuted(c.id)
                                if c.taskType == "youtube_channel_scrape" { legacyForward.add() }
                                try worker.complete(c.id)
                            } else {
                                try await Task.sleep(for: .milliseconds(2))
                            }
                        }
                        try worker.close()
                    }
                }
                for w in 0..<2 {
                    group.addTask {
                        let worker = APIWorker(client: h.tm.client, workerID: "api-\(w)", typeIDs: [channelID])
                        while producersDone.value < 2 {
                            if try await worker.runOnce(log: log) == nil { try await Task.sleep(for: .milliseconds(5)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Drain: legacy workers finish the off rows, API workers the rest.
            let worker = APIWorker(client: h.tm.client, workerID: "api-drain", typeIDs: [channelID])
            let legacy = try LegacyWorker(path: h.legacyPath, workerID: "legacy-drain")
            let drained = try await eventually(timeout: .seconds(30)) {
                while let c = try legacy.claim() {
                    await log.legacyExecuted(c.id)
                    if c.taskType == "youtube_channel_scrape" { legacyForward.add() }
                    try legacy.complete(c.id)
                }
                while try await worker.runOnce(log: log) != nil {}
                return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status <> 'completed'") == 0
            }
            let forwardRows = try h.scalar("SELECT COUNT(*) FROM task_queue WHERE task_type = 'youtube_channel_scrape'")
            let offRows = try h.scalar("SELECT COUNT(*) FROM task_queue WHERE task_type = 'youtube_video_scrape'")
            #expect(drained, "every row ends completed")
            #expect(forwardRows == rowsPerProducer && offRows == rowsPerProducer, "half of each producer's rows")
            #expect(legacyForward.value == 0, "a legacy worker executed a forward row")
            #expect(await log.legacyDoubles == 0)
            #expect(await log.apiDoubles == 0)
            // Every off row was executed by a legacy worker, every forward row through TaskManager.
            #expect(await log.legacy.count == offRows)
            #expect(
                try h.scalar(
                    """
                    SELECT COUNT(*) FROM task_queue WHERE task_type = 'youtube_video_scrape' AND claimed_by LIKE \
                    'legacy-%'
                    """
                ) == offRows)
            #expect(try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'done'") == forwardRows)
            #expect(await log.api.count == forwardRows)
        }
    }

    /// Rows queued while the type was off are shared between legacy workers
    /// and the bridge after the switch: whoever claims first executes.
    @Test func backlogIsSharedWithoutDoubleExecution() async throws {
        var off = channel
        off.mode = .off
        try await BridgeHarness.with(types: [off]) { h in
            let producer = try h.producer()
            for i in 0..<300 {
                try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "b\#(i)"}"#)
            }
            let log = ExecutionLog()
            // Ordered by state, not by time: the workers take 10 rows, wait
            // until the type is forward and the bridge has claimed some of the
            // backlog, then race it for the rest until nothing is queued.
            let resumed = SharedFlag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<2 {
                    group.addTask {
                        let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-\(w)")
                        while true {
                            if await log.legacy.count >= 10 && !resumed.isSet {
                                _ = try await eventually(timeout: .seconds(60)) { resumed.isSet }
                                continue
                            }
                            guard let c = try worker.claim() else {
                                if resumed.isSet { break }
                                continue
                            }
                            await log.legacyExecuted(c.id)
                            try worker.complete(c.id)
                            try await Task.sleep(for: .milliseconds(3))
                        }
                        try worker.close()
                    }
                }
                group.addTask {
                    _ = try await eventually(timeout: .seconds(60)) { await log.legacy.count >= 10 }
                    try await h.store.setMode(
                        taskType: "youtube_channel_scrape", mode: "forward", reason: "test", host: "t", actor: "test")
                    _ = try await eventually(timeout: .seconds(60)) {
                        try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger") >= 1
                    }
                    resumed.set()
                }
                try await group.waitForAll()
            }
            let typeID = try await h.typeID(channel.name)
            let api = APIWorker(client: h.tm.client, workerID: "api", typeIDs: [typeID])
            let done = try await eventually(timeout: .seconds(30)) {
                while try await api.runOnce(log: log) != nil {}
                return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status <> 'completed'") == 0
            }
            #expect(done)
            let legacyRows = Set(await log.legacy.keys)
            let bridged = Set(try h.rows(where: "claimed_by = 'taskbridge'").map { $0["id"] as Int64 })
            #expect(!legacyRows.isEmpty && !bridged.isEmpty, "both sides took part")
            #expect(legacyRows.isDisjoint(with: bridged), "a row was executed by both sides")
            #expect(legacyRows.count + bridged.count == 300)
            #expect(await log.legacyDoubles == 0)
            #expect(await log.apiDoubles == 0)
            #expect(await log.api.count == bridged.count)
        }
    }
}

final class SharedFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
