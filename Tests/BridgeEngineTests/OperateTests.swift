import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

/// Operating the bridge through the CLI: status, the
/// retirement gate on cutover, live parity, the demo.
@Suite(.serialized, .heavy) struct OperateTests {
    @Test func statusAndDoctorThroughTheCLI() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            try h.producer().insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "s"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 1
                })
            let status = try await CLIRun.run(["status", "--json"], harness: h)
            #expect(status.status == 0)
            let json = try JSONParser.parse(status.stdout)
            let row = json["types"]?.arrayValue?.first { $0["task_type"] == "youtube_channel_scrape" }
            #expect(row?["mode"] == "forward" && row?["forwarded"] == 1 && row?["in_flight"] == 1)
            let doctor = try await CLIRun.run(["doctor", "--json"], harness: h)
            #expect(doctor.status == 0, "\(doctor.stdout)")
            #expect(doctor.stdout.contains("API key accepted"))
        }
    }

    @Test func cutoverToRetiredIsGated() async throws {
        try await BridgeHarness.with(types: [channel]) { h in
            // stays in flight
            try h.producer().insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "r"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 1
                })
            let refused = try await CLIRun.run(
                ["cutover", "youtube_channel_scrape", "retired", "--reason", "try"], harness: h)
            #expect(refused.status == 1 && refused.stderr.contains("does not pass retire-check"))
            #expect(try await h.store.modes()["youtube_channel_scrape"] == "forward")
            let bare = try await CLIRun.run(["cutover", "youtube_channel_scrape", "retired", "--force"], harness: h)
            #expect(bare.status == 2, "--force needs --reason")
            let forced = try await CLIRun.run(
                ["cutover", "youtube_channel_scrape", "retired", "--force", "--reason", "owner approved"], harness: h)
            #expect(forced.status == 0)
            #expect(try await h.store.modes()["youtube_channel_scrape"] == "retired")
            #expect(try await h.store.audit().first?.reason == "owner approved")
        }
    }

    @Test func liveParityFindsDriftInTheBackground() async throws {
        try await BridgeHarness.with(types: [channel], configure: { $0.bridge.paritySampleIntervalSeconds = 0.2 }) {
            h in
            let producer = try h.producer()
            let id = try producer.insert(type: "youtube_channel_scrape", parameters: #"{"channel_url": "drift"}"#)
            #expect(
                try await eventually {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 1
                })
            try producer.execute(
                "UPDATE task_queue SET parameters = ? WHERE id = ?", [#"{"channel_url": "edited"}"#, id])
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    try h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_parity WHERE legacy_id = ? AND class = 'payload_diverged'",
                        [id]) == 1
                })
            #expect(
                try await h.store.statusReport().first { $0.taskType == "youtube_channel_scrape" }?.parityFindings == 1)
        }
    }

    @Test func demoRunsWithZeroDoubleExecutions() async throws {
        let dir = try TemporaryDirectory()
        let demo = AsyncProcess(
            executable: try TaskbridgeBinary.url(),
            arguments: ["demo", "--seconds", "3", "--rate", "60", "--dir", dir.path("demo")])
        try demo.start()
        // The demo drains within 60 s of its 3 s of inserts; a hang is a failure, not a stuck CI.
        let ended = try await eventually(timeout: .seconds(180), interval: .milliseconds(100)) { !demo.isRunning }
        if !ended { await demo.kill() }
        let r = (status: await demo.wait(), stdout: demo.stdout)
        let text = r.stdout
        #expect(ended && r.status == 0, "\(text)\(demo.stderr.suffix(2000))")
        #expect(text.contains("double executions      0"))
        #expect(text.contains("not terminal (lost)    0"))
        #expect(text.contains("cutover youtube_video_scrape: off -> forward"))
    }
}
