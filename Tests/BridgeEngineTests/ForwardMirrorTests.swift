import BridgeConfig
import Foundation
import LegacyQueue
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

let channel = TypeMapping(
    legacyType: "youtube_channel_scrape", name: "PrismQ.YouTube.Channel.Scrape", mode: .forward,
    paramSchema: ["type": "object", "properties": ["channel_url": ["type": "string"]], "required": ["channel_url"]])
let video = TypeMapping(
    legacyType: "youtube_video_scrape", name: "PrismQ.YouTube.Video.Scrape", mode: .off,
    paramSchema: ["type": "object", "properties": ["video_url": ["type": "string"]], "required": ["video_url"]])

@Suite(.heavy) struct ForwardMirrorTests {
    @Test func producerRowsAreForwardedAndMirroredCompleted() async throws {
        try await BridgeHarness.with(types: [channel, video]) { h in
            let producer = try h.producer()
            var ids: [Int64] = []
            for i in 0..<20 {
                let style = LegacyProducer.Style.allCases[i % 3]
                ids.append(
                    try producer.insert(
                        type: "youtube_channel_scrape", parameters: #"{"channel_url": "https://youtube.com/@c\#(i)"}"#,
                        style: style))
            }
            // Claimed at capture: never visible as queued.
            #expect(try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'queued'") == 0)
            let typeID = try await h.typeID(channel.name)
            let worker = APIWorker(client: h.tm.client, workerID: "api-1", typeIDs: [typeID])
            var done = 0
            let finished = try await eventually(timeout: .seconds(20)) {
                while try await worker.runOnce() != nil { done += 1 }
                return try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == 20
            }
            #expect(finished)
            #expect(done == 20)
            let rows = try h.rows()
            for r in rows {
                #expect(r["claimed_by"] as String? == "taskbridge")
                let result: String? = r["result_data"]
                #expect(result?.contains("items_processed") == true)
                #expect(LegacyTimestamp.parse(r["completed_at"] as String? ?? "") != nil)
            }
        }
    }
}
