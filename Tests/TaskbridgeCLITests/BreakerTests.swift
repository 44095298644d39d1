import BridgeConfig
import BridgeEngine
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

/// The breaker through a proxy that refuses and then answers (issue 15,
/// item 1): one open per outage, one line when traffic flows again, and the
/// backlog out within a fixed deadline of the API answering.
@Suite(.serialized, .heavy) struct BreakerTests {
    @Test func trafficResumesWithinSecondsOfTheAPIAnsweringAgain() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], withProxy: true, startEngine: false) { h in
            let proxy = try #require(h.proxy)
            let bridge = try await BridgeProcess.started(h, type: channel)
            defer { Task { await bridge.kill() } }
            proxy.set(.status(503, body: "<html>down for maintenance</html>"))
            let producer = try h.producer()
            for i in 0..<30 { try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "o\#(i)"}"#) }
            #expect(
                try await eventually(timeout: .seconds(30)) { bridge.stderrText.contains("circuit opened") },
                "\(bridge.stderrText.suffix(2000))")
            // The outage goes on: the breaker probes, one request at a time.
            let before = proxy.count("POST /api/tasks")
            #expect(try await eventually(timeout: .seconds(60)) { proxy.count("POST /api/tasks") >= before + 3 })
            proxy.set(.pass)
            // A fixed deadline, not a scaled one: what is asserted is the
            // recovery itself (the old breaker idled for up to a minute).
            // 30 s is twice the target of 15 s, for a loaded CI machine.
            var sent = 0
            _ = try await eventually(timeout: .seconds(30), interval: .milliseconds(50), scaled: false) {
                sent = try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('sent','done')")
                return sent == 30
            }
            #expect(
                sent == 30, "\(sent) of 30 rows sent 30 s after the API answered: \(bridge.stderrText.suffix(2000))")
            let log = bridge.stderrText
            #expect(log.components(separatedBy: "circuit opened").count == 2, "one outage, one open")
            #expect(
                try await eventually(timeout: .seconds(10)) {
                    bridge.stderrText.contains("circuit closed") && bridge.stderrText.contains("outage_seconds=")
                })
        }
    }
}
