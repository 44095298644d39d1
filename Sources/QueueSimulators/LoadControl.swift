import Synchronization

/// A counter shared by concurrent load loops (tests, demo, benchmarks).
public final class SharedCounter: Sendable {
    private let value_ = Mutex(0)
    public init() {}
    public func add() { value_.withLock { $0 += 1 } }
    /// Increments and returns the new value.
    public func next() -> Int {
        value_.withLock {
            $0 += 1; return $0
        }
    }
    public var value: Int { value_.withLock { $0 } }
}

/// A wall-clock end for load loops; never used to wait for a result.
public struct Deadline: Sendable {
    let end: ContinuousClock.Instant
    public init(seconds: Double) { end = .now + .milliseconds(Int(seconds * 1000)) }
    public var passed: Bool { ContinuousClock.now >= end }
}
