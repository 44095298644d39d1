import Foundation
import Testing

/// How many tests that start servers, child processes or a browser run at
/// once. Swift Testing starts every test together; on a slow, loaded
/// 2-core machine forty embedded servers and bridges starved each other
/// into client deadlines (issue 14, item 0). Each such test holds slots for
/// its whole run, so the deadlines inside it start only when it can run.
/// Most of such a test's time is waiting on other processes, so the default
/// is three per core: enough to keep the run short, few enough that forty
/// servers never start in the same second. `TASKBRIDGE_TEST_SLOTS`
/// overrides it.
public actor TestSlots {
    public static let shared = TestSlots(
        capacity: ProcessInfo.processInfo.environment["TASKBRIDGE_TEST_SLOTS"].flatMap(Int.init)
            ?? 3 * max(1, ProcessInfo.processInfo.activeProcessorCount))

    let capacity: Int
    private var free: Int
    private var waiters: [(weight: Int, continuation: CheckedContinuation<Void, Never>)] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        free = self.capacity
    }

    /// First come, first served: a heavy test waiting for two slots is not
    /// overtaken forever by light ones.
    func acquire(_ weight: Int) async {
        let w = min(weight, capacity)
        if waiters.isEmpty && free >= w {
            free -= w
            return
        }
        await withCheckedContinuation { waiters.append((w, $0)) }
    }

    func release(_ weight: Int) {
        free += min(weight, capacity)
        while let first = waiters.first, first.weight <= free {
            free -= first.weight
            waiters.removeFirst()
            first.continuation.resume()
        }
    }

    public func withSlots<T: Sendable>(_ weight: Int, _ body: @Sendable () async throws -> T) async throws -> T {
        await acquire(weight)
        do {
            let r = try await body()
            release(weight)
            return r
        } catch {
            release(weight)
            throw error
        }
    }
}

/// `@Suite(.heavy)`: every test (and each case of a parameterized one) of
/// the suite runs holding `weight` slots of `TestSlots.shared`.
public struct HeavyTrait: TestTrait, SuiteTrait, TestScoping {
    public let weight: Int
    public var isRecursive: Bool { true }

    /// Once per test case only: a scope for the function as well would take
    /// a second slot inside the first, and a full set of such tests would
    /// wait on each other forever.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> HeavyTrait? {
        testCase == nil ? nil : self
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await TestSlots.shared.withSlots(weight) { try await function() }
    }
}

extension Trait where Self == HeavyTrait {
    /// Starts servers or child processes.
    public static var heavy: HeavyTrait { HeavyTrait(weight: 1) }
    /// Starts a browser beside a bridge: counts as two.
    public static var browser: HeavyTrait { HeavyTrait(weight: 2) }
}
