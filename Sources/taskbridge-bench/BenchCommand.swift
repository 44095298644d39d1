import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import GRDB
import LegacyQueue
import Logging
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// `taskbridge-bench api|bridge|verify`: speed and footprint in the shape
/// users run (`taskbridge serve`, `taskbridge run` and producers as separate
/// processes), as ratios and distributions against baselines taken in the
/// same run. Build with `swift build -c release`.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskbridge-bench", abstract: "Benchmarks of taskbridge (build with -c release).",
        subcommands: [API.self, BridgeBench.self, FleetBench.self, VerifyBench.self, Produce.self])

    struct API: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "api",
            abstract:
                """
                Embedded TaskManager through the Swift client over loopback: creates/s, claim+complete/s, GET/s, \
                server RSS.
                """
        )
        @Option(help: "Creates to send.") var creates = 20_000
        @Option(help: "Requests in flight for creates and GETs.") var concurrency = 64
        @Flag(help: "Also time each route alone, one request at a time (where a claim+complete pair spends its time).")
        var sequential = false
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let dir = try TemporaryDirectory(prefix: "bench-api")
            let key = "bench-" + UUID().uuidString
            let server = try ChildProcess.start(
                ["serve", "--listen", "127.0.0.1:0", "--database", dir.path("tm.db")],
                environment: ["TASKMANAGER_API_KEY": key])
            defer { server.stop() }
            let url = try await server.waitForLine(prefix: "listening ").replacingOccurrences(
                of: "listening ", with: "")
            var cc = try ClientConfiguration(baseURL: url, apiKey: key)
            cc.maxConcurrentRequests = concurrency
            cc.maxAttempts = 1
            let client = TaskManagerClient(configuration: cc)
            defer { Task { await client.shutdown() } }
            let type = try await client.registerTaskType(name: "bench.a", version: "1", paramSchema: ["type": "object"])

            let total = creates
            let c = concurrency
            let createRate = try await Bench.rate(total) {
                try await withThrowingTaskGroup(of: Void.self) { g in
                    for w in 0..<c {
                        g.addTask {
                            var i = w
                            while i < total {
                                _ = try await client.createTask(
                                    type: "bench.a", params: ["n": .int(Int64(i)), "s": "payload"])
                                i += c
                            }
                        }
                    }
                    try await g.waitForAll()
                }
            }
            var claimRates: [Int: Double] = [:]
            for workers in [1, 4] {
                let count = workers == 1 ? min(3000, total / 4) : min(8000, total / 2)
                let done = SharedCounter()
                claimRates[workers] = try await Bench.rate(count) {
                    try await withThrowingTaskGroup(of: Void.self) { g in
                        for w in 0..<workers {
                            g.addTask {
                                while done.next() <= count {
                                    guard
                                        let t = try await client.claimTask(
                                            workerID: "w\(w)", taskTypeID: type.id, policy: .fifo)
                                    else { break }
                                    _ = try await client.completeTask(
                                        id: t.id, workerID: "w\(w)", success: true, result: ["ok": true])
                                }
                            }
                        }
                        try await g.waitForAll()
                    }
                }
            }
            let gets = total
            let getRate = try await Bench.rate(gets) {
                try await withThrowingTaskGroup(of: Void.self) { g in
                    for w in 0..<c {
                        g.addTask {
                            var i = w
                            while i < gets {
                                _ = try await client.getTask(id: Int64(1 + i % total))
                                i += c
                            }
                        }
                    }
                    try await g.waitForAll()
                }
            }
            if sequential {
                // Sequential latency per route, to see where a pair's time goes.
                let n = 1000
                var ids: [Int64] = []
                let c1 = try await Bench.rate(n) {
                    for i in 0..<n {
                        ids.append(try await client.createTask(type: "bench.a", params: ["seq": .int(Int64(i))]).id)
                    }
                }
                var claimed: [Int64] = []
                let c2 = try await Bench.rate(n) {
                    for _ in 0..<n {
                        if let t = try await client.claimTask(workerID: "s", taskTypeID: type.id) {
                            claimed.append(t.id)
                        }
                    }
                }
                let c3 = try await Bench.rate(claimed.count) {
                    for id in claimed { _ = try await client.completeTask(id: id, workerID: "s", success: true) }
                }
                let c4 = try await Bench.rate(n) { for id in ids { _ = try await client.getTask(id: id) } }
                let c5 = try await Bench.rate(n) { for _ in 0..<n { _ = try await client.health() } }
                print(
                    String(
                        format: "sequential req/s: create %.0f  claim %.0f  complete %.0f  get %.0f  health %.0f", c1,
                        c2, c3, c4, c5))
            }
            let rss = ProcessStats.peakRSSMegabytes(pid: server.pid)
            let results: [(String, String, String)] = [
                ("creates/s (unique params, \(c) in flight)", String(format: "%.0f", createRate), ">= 5000"),
                ("claim+complete/s, 1 worker", String(format: "%.0f", claimRates[1]!), ""),
                ("claim+complete/s, 4 workers", String(format: "%.0f", claimRates[4]!), ">= 2000"),
                ("GET /tasks/{id}/s (\(c) in flight)", String(format: "%.0f", getRate), ""),
                ("server peak RSS (MB)", String(format: "%.1f", rss ?? -1), "< 100"),
            ]
            Bench.report(results, json: json)
        }
    }

}

extension BenchCommand {
    struct VerifyBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract:
                "verify over N bridged rows against the embedded server: wall time and peak RSS of the verify process.")
        @Option(help: "Bridged rows.") var rows = 100_000
        @Flag(help: "Machine-readable output.") var json = false
        @Option(
            help: """
                Run verify under this profiler command line (e.g. "heaptrack -o /tmp/verify"); the peak RSS printed \
                then includes the profiler.
                """)
        var profileWith: String?

        func run() async throws {
            let h = try await BridgeHarness.start(
                types: [Bench.benchType], configure: Bench.production, startEngine: false)
            defer { Task { await h.shutdown() } }
            try await h.store.install()
            try await h.store.setMode(
                taskType: "bench_type", mode: "forward", reason: nil, host: "bench", actor: "bench")
            let producer = try h.producer()
            var i = 0
            while i < rows {
                let n = min(10_000, rows - i)
                try producer.insertBatch(type: "bench_type", parameters: (i..<(i + n)).map { #"{"n": \#($0)}"# })
                i += n
            }
            h.startEngine()
            let setup = ContinuousClock.now
            _ = try await eventually(timeout: .seconds(900), interval: .milliseconds(200)) {
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state <> 'intent'") == rows
            }
            await h.stopEngine()
            FileHandle.standardError.write(
                Data("forwarded \(rows) rows in \(ContinuousClock.now - setup); verifying\n".utf8))
            let conf = try h.writeConfig(name: "verify.conf", url: h.tm.baseURL)
            let start = ContinuousClock.now
            let child = try ChildProcess.start(
                ["verify", "--config", conf, "--grace", "0", "--json"],
                environment: ["TASKMANAGER_API_KEY": h.tm.apiKey],
                wrapper: profileWith.map { $0.split(separator: " ").map(String.init) } ?? [])
            // The verify process's own high-water mark (VmHWM, read until it
            // exits). getrusage(RUSAGE_CHILDREN) gave the largest RSS of any
            // child this bench ever reaped: 93.8 MB where the verify process
            // itself peaked at 72.4 MB (GNU time's figure for the same run).
            let watched = child.child.pid
            let hwm = Task {
                var peak = 0.0
                while !Task.isCancelled, let v = ProcessStats.peakRSSMegabytes(pid: watched) {
                    peak = max(peak, v)
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return peak
            }
            let status = await child.child.wait()
            let wall = (ContinuousClock.now - start) / .seconds(1)
            hwm.cancel()
            let peak = await hwm.value
            if status != 0 {
                FileHandle.standardError.write(Data("verify failed: \(child.child.stderr.suffix(2000))\n".utf8))
            }
            Bench.report(
                [
                    ("verify exit status", "\(status)", "0"),
                    ("verify wall time, \(rows) rows (s)", String(format: "%.1f", wall), "< 60"),
                    ("verify peak RSS (MB)", String(format: "%.1f", peak), "< 80"),
                    ("rows/s", String(format: "%.0f", Double(rows) / wall), ""),
                ], json: json)
        }
    }
}

enum Bench {
    static func rate(_ count: Int, _ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        let s = (ContinuousClock.now - start) / .seconds(1)
        return Double(count) / s
    }

    static func report(_ rows: [(String, String, String)], json: Bool) {
        if json {
            print(
                PHPJSON.encode(
                    .array(rows.map { ["metric": .string($0.0), "value": .string($0.1), "target": .string($0.2)] })))
        } else {
            var widths = [6, 5, 6]
            for r in rows {
                widths = [max(widths[0], r.0.count), max(widths[1], r.1.count), max(widths[2], r.2.count)]
            }
            func line(_ a: String, _ b: String, _ c: String) -> String {
                a.padding(toLength: widths[0], withPad: " ", startingAt: 0) + "  "
                    + String(repeating: " ", count: widths[1] - b.count) + b
                    + "  " + c
            }
            print(([line("metric", "value", "target")] + rows.map { line($0.0, $0.1, $0.2) }).joined(separator: "\n"))
        }
    }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }

    /// Single-row autocommit inserts, the way a producer writes, into three
    /// identical files: no bridge, bridge installed with the type off, and
    /// with the type in forward (the trigger claims), and in a 25 % canary
    /// shared by params (the trigger computes the row's bucket). Rounds
    /// alternate to spread machine noise evenly; the median round counts.
    static func insertCost(
        rows: Int, synchronous: String
    ) async throws -> (baseline: Double, off: Double, forward: Double, canary: Double) {
        let dir = try TemporaryDirectory(prefix: "bench-insert")
        var rates: [String: [Double]] = [:]
        for round in 0..<3 {
            for scenario in ["baseline", "off", "forward", "canary"] {
                let path = dir.path("\(scenario)-\(round).db")
                try LegacyFixture.a.create(at: path)
                if scenario != "baseline" {
                    let store = try LegacyQueueStore.open(
                        path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false
                    ).store
                    try await store.install()
                    try await store.setMode(
                        taskType: "t", mode: scenario == "canary" ? "forward" : scenario,
                        percent: scenario == "canary" ? 25 : 100, shareBy: .params, reason: nil, host: "bench",
                        actor: "bench")
                    try store.close()
                }
                rates[scenario, default: []].append(
                    try producerInsertRate(path: path, rows: rows, synchronous: synchronous))
            }
        }
        func median(_ s: String) -> Double { percentile(rates[s]!, 0.5) }
        return (median("baseline"), median("off"), median("forward"), median("canary"))
    }

    /// Synchronous on purpose: the producer's own cost, without async hops.
    static func producerInsertRate(path: String, rows: Int, synchronous: String) throws -> Double {
        let q = try observerConnection(path)
        defer { try? q.close() }
        try q.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        let params = #"{"channel_url": "https://youtube.com/@bench", "top_n": 50}"#
        let start = ContinuousClock.now
        try q.writeWithoutTransaction { db in
            let stmt = try db.makeStatement(
                sql:
                    """
                    INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at) VALUES ('t', ?, \
                    ?, datetime('now'), datetime('now'))
                    """
            )
            for i in 0..<rows {
                // autocommit: one transaction per row, as producers do
                try stmt.execute(arguments: [params, 1 + i % 10])
            }
        }
        return Double(rows) / ((ContinuousClock.now - start) / .seconds(1))
    }

    /// The shipped defaults (the test harness polls faster to keep tests short).
    static let production: @Sendable (inout BridgeConfiguration) -> Void = { c in
        let defaults = BridgeConfiguration.Bridge()
        c.bridge.pollIntervalSeconds = defaults.pollIntervalSeconds
        c.bridge.mirrorIntervalSeconds = defaults.mirrorIntervalSeconds
        c.bridge.maxInFlight = defaults.maxInFlight
        c.bridge.batchSize = defaults.batchSize
    }

    static let benchType = TypeMapping(
        legacyType: "bench_type", name: "Bench.Forward", mode: .forward, paramSchema: ["type": "object"])

    static func idleFootprint() async throws -> (cpuPercent: Double, rssMB: Double) {
        let dir = try TemporaryDirectory(prefix: "bench-idle")
        let port = Int.random(in: 20_000...60_000)
        let conf = """
            [legacy]
            database = "worker_queue.db"
            create_if_missing = true
            [taskmanager]
            url = "embedded"
            [embedded]
            listen = "127.0.0.1:\(port)"
            database = "taskmanager.db"
            [bridge]
            metrics_listen = "off"
            [types.youtube_channel_scrape]
            name = "PrismQ.YouTube.Channel.Scrape"
            mode = "forward"
            """
        try conf.write(toFile: dir.path("bridge.conf"), atomically: true, encoding: .utf8)
        let child = try ChildProcess.start(
            ["run", "--config", dir.path("bridge.conf")], environment: ["TASKMANAGER_API_KEY": "idle-bench-key"])
        defer { child.stop() }
        _ = try await eventually(timeout: .seconds(20)) {
            FileManager.default.fileExists(atPath: dir.path("worker_queue.db"))
        }
        try await Task.sleep(for: .seconds(3))
        guard let c0 = ProcessStats.cpuSeconds(pid: child.pid) else {
            throw BenchError("cannot read /proc for the child")
        }
        let t0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(10))
        let c1 = ProcessStats.cpuSeconds(pid: child.pid) ?? c0
        let wall = (ContinuousClock.now - t0) / .seconds(1)
        return ((c1 - c0) / wall * 100, ProcessStats.rssMegabytes(pid: child.pid) ?? -1)
    }
}

/// A child `taskbridge` process (the product binary next to this one).
final class ChildProcess: Sendable {
    let child: AsyncProcess
    var pid: Int32 { child.pid }

    /// `wrapper`: a profiler's command line, run through `env` with `taskbridge` and its arguments after it.
    static func start(
        _ arguments: [String], environment: [String: String] = [:], wrapper: [String] = []
    ) throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        env["LOG_LEVEL"] = "error"
        let binary = try TaskbridgeBinary.url()
        let process =
            wrapper.isEmpty
            ? AsyncProcess(executable: binary, arguments: arguments, environment: env)
            : AsyncProcess(
                executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: wrapper + [binary.path] + arguments,
                environment: env)
        let c = ChildProcess(child: process)
        try c.child.start()
        return c
    }

    init(child: AsyncProcess) { self.child = child }

    func waitForLine(prefix: String, timeout: Duration = .seconds(30)) async throws -> String {
        var found: String?
        _ = try await eventually(timeout: timeout) {
            found = child.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
            return found != nil
        }
        guard let found else { throw BenchError("child did not print \(prefix): \(child.stderr.suffix(2000))") }
        return found
    }

    func stop() {
        child.signal(SIGTERM)
    }
}

enum ProcessStats {
    static func status(_ pid: Int32, _ field: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap {
                Double($0)
            }
            return kb.map { $0 / 1024 }
        }
        return nil
    }
    static func rssMegabytes(pid: Int32) -> Double? { status(pid, "VmRSS") }
    static func peakRSSMegabytes(pid: Int32) -> Double? { status(pid, "VmHWM") }

    /// utime + stime from /proc/PID/stat, in seconds.
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

import Synchronization

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
