import Foundation

/// A throwaway directory that removes itself.
public final class TemporaryDirectory: Sendable {
    public let url: URL
    public init(prefix: String = "taskbridge") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Polls `condition` until it holds or the deadline passes; the only way
/// tests wait for something another process or task does. The deadline is
/// `timeout` times `deadlineScale`: a wait returns as soon as its condition
/// holds, so a long deadline costs nothing unless something hangs, and a
/// machine four times slower and loaded must not read as a failure.
///
/// `scaled: false` keeps the deadline as given, for the one kind of test
/// whose deadline is what it asserts (a recovery time).
public func eventually(
    timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20), scaled: Bool = true,
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + (scaled ? timeout * deadlineScale : timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}

/// `TASKBRIDGE_DEADLINE_SCALE` (default 4): how much slower than the
/// machine a test was written on a wait may be before it counts as a hang.
public let deadlineScale: Int =
    ProcessInfo.processInfo.environment["TASKBRIDGE_DEADLINE_SCALE"].flatMap(Int.init)
    .map { max(1, $0) } ?? 4

public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
