import BridgeConfig
import Foundation
import TaskBridgeTesting
import Testing
import TestSlots

/// Wake-ups driven by the kernel's file notifications (issue 15, item 2): rows
/// flowing at a steady rate wake the real `taskbridge run` through inotify,
/// the idle look runs at the poll interval and no faster, and where
/// notifications are switched off the bridge polls and still forwards.
@Suite(.serialized, .heavy) struct WakeupTests {
    static let interval = 1.0

    /// Each row is inserted only once the one before it was sent: a steady
    /// flow, the pace at which the old watcher polled every millisecond.
    static func steadyRows(_ h: BridgeHarness, _ bridge: BridgeProcess, count: Int) async throws {
        let producer = try h.producer()
        for i in 0..<count {
            try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "steady-\#(i)"}"#)
            let sent = try await eventually(timeout: .seconds(20)) {
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('sent','done')") == i + 1
            }
            guard sent else {
                Issue.record("row \(i) was not sent: \(bridge.stderrText.suffix(2000))")
                return
            }
        }
    }

    @Test func steadyRowsWakeTheBridgeByNotificationNotByPolling() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], startEngine: false) { h in
            let bridge = try BridgeProcess(
                harness: h, metrics: true, extraBridge: ["poll_interval_ms = \(Int(Self.interval * 1000))"])
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            _ = try await h.typeID(forward.name)
            let before = try PrometheusText(try await bridge.metrics())
            let started = ContinuousClock.now
            try await Self.steadyRows(h, bridge, count: 40)
            let after = try PrometheusText(try await bridge.metrics())
            let elapsed = (ContinuousClock.now - started) / .seconds(1)
            func delta(_ cause: String) -> Double {
                after.sum("taskbridge_legacy_wakeups_total", where: ["cause": cause])
                    - before.sum("taskbridge_legacy_wakeups_total", where: ["cause": cause])
            }
            // One idle look per interval, and one more at each end of the
            // measured span. The millisecond poll this replaces made a
            // thousand a second while rows flowed.
            #expect(
                delta("timer") <= elapsed / Self.interval + 2,
                "\(delta("timer")) timer looks in \(elapsed) s: the watcher polls")
            #expect(delta("notification") >= 1, "no commit was announced by the kernel")
            #expect(!bridge.stderrText.contains("no file notifications"))
        }
    }

    @Test func withoutNotificationsTheBridgePollsAndStillForwards() async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward], startEngine: false) { h in
            let bridge = try BridgeProcess(harness: h, metrics: true, extraBridge: ["file_notifications = false"])
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            _ = try await h.typeID(forward.name)
            try await Self.steadyRows(h, bridge, count: 10)
            let metrics = try PrometheusText(try await bridge.metrics())
            #expect(metrics.sum("taskbridge_legacy_wakeups_total", where: ["cause": "notification"]) == 0)
            #expect(metrics.sum("taskbridge_legacy_wakeups_total", where: ["cause": "timer"]) > 0)
            #expect(bridge.stderrText.contains("no file notifications for the legacy file; polling"))
        }
    }
}
