import Foundation

/// Threads of the store's own that run its blocking SQLite calls for async
/// callers. GRDB's async API hops through its pool's waiting queue, the
/// connection's queue and back to the caller's executor: three or four thread
/// wake-ups per call, the largest share of a forwarded row's CPU at 100
/// rows/s (a `perf` count of wake-ups: about a third of them). A call here is
/// one wake-up in (a condition signal) and one out (the continuation), and
/// GRDB's synchronous API runs on the calling thread.
///
/// Jobs are short (no job waits for another), so a few threads suffice: reads
/// get two, so that a long scan does not hold capture's short reads; writes
/// get one, as SQLite allows one writer anyway. A job runs to its end: a
/// cancelled caller sees its cancellation at its next check, as it would
/// after a GRDB call (a write's lock wait ends at the busy timeout either way).
final class BlockingThreads: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [(@Sendable () -> Void)?] = []
    private var head = 0
    private var stopped = false
    private var started = false
    private let name: String
    private let count: Int

    /// The threads start with the first job: a store opened only to be
    /// inspected synchronously never starts them.
    init(name: String, count: Int) {
        self.name = name
        self.count = max(1, count)
    }

    /// Runs `body` on one of the threads and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            submit { c.resume(with: Result(catching: body)) }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        guard !stopped else {
            condition.unlock()
            // After the store was released: run here rather than never.
            job()
            return
        }
        jobs.append(job)
        if !started {
            started = true
            for i in 0..<count {
                let thread = Thread { [self] in self.work() }
                thread.name = count > 1 ? "\(name)-\(i)" : name
                thread.start()
            }
        }
        condition.signal()
        condition.unlock()
    }

    /// Ends the threads once the jobs already submitted have run.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// A job is released outside the lock: the last reference to the store
    /// may be in it, and the store's deinit stops these threads (under the
    /// same lock).
    private func work() {
        condition.lock()
        while true {
            while head == jobs.count && !stopped { condition.wait() }
            if head == jobs.count {
                condition.unlock()
                return
            }
            var job = jobs[head]
            jobs[head] = nil
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job?()
            job = nil
            condition.lock()
        }
    }
}
