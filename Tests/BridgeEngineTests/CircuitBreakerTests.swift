import BridgeEngine
import GRDB
import LegacyQueue
import Synchronization
import Testing

/// The breaker without a socket (issue 15, item 1).
@Suite struct CircuitBreakerTests {
    @Test func oneOutageIsOneOpenHoweverManySendsWereInFlight() {
        var b = CircuitBreaker()
        var events: [CircuitBreaker.Event] = []
        // 64 sends started at t=0 fail one after the other.
        for i in 0..<64 {
            if let e = b.failure(startedAt: 0, now: 0.001 * Double(i)) { events.append(e) }
        }
        #expect(events == [.opened])
        #expect(b.isOpen)
    }

    @Test func probesAtBoundedIntervalsAndClosesOnTheFirstSuccess() {
        var b = CircuitBreaker()
        for _ in 0..<CircuitBreaker.threshold { _ = b.failure(startedAt: 0, now: 0) }
        let waits = !b.allows(now: 0.1)
        #expect(waits, "open: sends wait")
        // An outage of ten minutes: probes fail, their interval doubles up to the cap.
        var t = 0.0
        var probes = 0
        var longest = 0.0, last = 0.0
        while t < 600 {
            t += 0.05
            if b.allows(now: t) {
                probes += 1
                if probes > 1 { longest = max(longest, t - last) }
                last = t
                let second = b.allows(now: t)
                #expect(!second, "one probe at a time")
                _ = b.failure(startedAt: t, now: t + 0.01)
            }
        }
        #expect(longest <= CircuitBreaker.maxProbeInterval + 0.1)
        // 600 s at a 4 s cap: well over a hundred probes, never a stampede.
        #expect(probes >= Int(600 / (CircuitBreaker.maxProbeInterval + 0.1)))
        // The server answers again: at the latest one interval later a probe goes and closes it.
        var resumed: Double?
        while resumed == nil {
            t += 0.05
            if b.allows(now: t) {
                let event = b.success(now: t + 0.01)
                #expect(event == .closed(outage: t + 0.01))
                resumed = t
            }
        }
        #expect(resumed! - 600 <= CircuitBreaker.maxProbeInterval + 0.1)
        let flows = b.allows(now: t + 1)
        #expect(!b.isOpen && flows)
    }

    @Test func failuresOfSendsOlderThanTheProbeChangeNothing() {
        var b = CircuitBreaker()
        for _ in 0..<CircuitBreaker.threshold { _ = b.failure(startedAt: 0, now: 1) }
        let probe = b.allows(now: 2)
        #expect(probe)
        guard case .halfOpen = b.state else {
            Issue.record("expected half-open, got \(b.state)")
            return
        }
        // A send that started before the probe fails late: still half-open.
        _ = b.failure(startedAt: 0.5, now: 2.1)
        guard case .halfOpen = b.state else {
            Issue.record("a late failure of an old send reopened the breaker")
            return
        }
        let closed = b.success(now: 2.2)
        #expect(closed != nil)
    }

    @Test func fewerFailuresThanTheThresholdKeepItClosed() {
        var b = CircuitBreaker()
        for _ in 0..<(CircuitBreaker.threshold - 1) {
            let e = b.failure(startedAt: 0, now: 0)
            #expect(e == nil)
        }
        let reset = b.success(now: 1)
        #expect(reset == nil)
        for _ in 0..<(CircuitBreaker.threshold - 1) {
            let e = b.failure(startedAt: 1, now: 1)
            #expect(e == nil)
        }
        #expect(!b.isOpen)
    }
}

/// A full disk reported like the write-lock wait (issue 15, item 5): one
/// event when failures begin, none while they go on, one when a write
/// succeeds again; busy errors are the lock's business, not this one's.
@Suite struct WriteFailureWatchTests {
    @Test func oneEventWhenFailuresBeginAndOneWhenTheyEnd() throws {
        let watch = WriteFailureWatch()
        let events = EventLog()
        watch.configure { events.append($0) }
        let full = DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full")
        #expect(WriteFailureWatch.isPersistent(full))
        #expect(!WriteFailureWatch.isPersistent(DatabaseError(resultCode: .SQLITE_BUSY)))
        for _ in 0..<10 { watch.failedForTesting(full) }
        #expect(events.all.count == 1)
        #expect(watch.current?.reason.contains("full") == true)
        watch.succeededForTesting()
        watch.succeededForTesting()
        #expect(events.all.count == 2)
        if case .ended? = events.all.last {} else { Issue.record("expected an end event: \(events.all)") }
        #expect(watch.current == nil)
    }

    final class EventLog: Sendable {
        let events = Mutex<[WriteFailureWatch.Event]>([])
        func append(_ e: WriteFailureWatch.Event) { events.withLock { $0.append(e) } }
        var all: [WriteFailureWatch.Event] { events.withLock { $0 } }
    }
}
