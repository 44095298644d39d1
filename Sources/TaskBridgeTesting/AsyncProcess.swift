import Foundation
import Synchronization

/// A child process whose output is collected and whose exit is awaited
/// without blocking a thread of the cooperative pool: tests run the CLI
/// against servers living in the same process, and a blocked pool thread
/// would keep those servers from answering their own child.
public final class AsyncProcess: Sendable {
    private let process: Process
    private let out = Pipe(), err = Pipe()
    private let stdoutData = Mutex(Data()), stderrData = Mutex(Data())
    private let exit = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))

    public init(executable: URL, arguments: [String], environment: [String: String]? = nil) {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        if let environment { p.environment = environment }
        process = p
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { exit.withLock { $0.status == nil } }
    public var stdout: String { String(decoding: stdoutData.withLock { $0 }, as: UTF8.self) }
    public var stderr: String { String(decoding: stderrData.withLock { $0 }, as: UTF8.self) }
    /// Exactly what the child wrote to stderr (no UTF-8 repair).
    public var stderrBytes: [UInt8] { [UInt8](stderrData.withLock { $0 }) }

    /// Each pipe is drained by a thread of its own with blocking reads, not
    /// by `readabilityHandler`: clearing a handler while its dispatch source
    /// fires crashed libdispatch's event loop in CI (Foundation on Linux).
    private let drained = DispatchGroup()

    private func drain(_ pipe: Pipe, stdout: Bool) {
        let fd = pipe.fileHandleForReading.fileDescriptor
        drained.enter()
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let chunk = Data(buffer[0..<n])
                    if stdout {
                        stdoutData.withLock { $0.append(chunk) }
                    } else {
                        stderrData.withLock { $0.append(chunk) }
                    }
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            drained.leave()
        }
        thread.name = "async-process-pipe"
        thread.start()
    }

    public func start() throws {
        process.standardOutput = out
        process.standardError = err
        process.terminationHandler = { [self] p in
            // A grandchild that inherited the pipes can keep them open: wait
            // for the output a little, never for ever.
            _ = drained.wait(timeout: .now() + 5)
            let waiters = exit.withLock { e -> [CheckedContinuation<Int32, Never>] in
                e.status = p.terminationStatus
                defer { e.waiters = [] }
                return e.waiters
            }
            for w in waiters { w.resume(returning: p.terminationStatus) }
        }
        try process.run()
        drain(out, stdout: true)
        drain(err, stdout: false)
    }

    /// The exit status, once the process has ended and its output is read.
    public func wait() async -> Int32 {
        await withCheckedContinuation { c in
            let done = exit.withLock { e -> Int32? in
                if let s = e.status { return s }
                e.waiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    public func signal(_ sig: Int32) {
        if isRunning { Foundation.kill(process.processIdentifier, sig) }
    }

    /// SIGKILL, then wait for the exit.
    public func kill() async {
        guard isRunning else { return }
        signal(SIGKILL)
        _ = await wait()
    }

    /// Runs to completion.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil
    ) async throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let p = AsyncProcess(executable: executable, arguments: arguments, environment: environment)
        try p.start()
        let status = await p.wait()
        return (status, p.stdout, p.stderr)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range so that outgoing connections do not take it meanwhile.
public enum FreePort {
    public static func find() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000...32_000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            if ok { return port }
        }
        throw HarnessError("no free port found")
    }
}

/// The `taskbridge` executable for tests and benchmarks: next to the running
/// binary (the test bundle, `taskbridge-bench`), else `.build/debug`.
public enum TaskbridgeBinary {
    public static func url() throws -> URL {
        let fm = FileManager.default
        var candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
                "taskbridge")
        ]
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/taskbridge"))
        for c in candidates where fm.isExecutableFile(atPath: c.path) { return c }
        throw HarnessError(
            "taskbridge binary not found (build it first: swift build); looked in \(candidates.map(\.path))")
    }
}
