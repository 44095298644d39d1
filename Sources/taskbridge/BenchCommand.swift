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

/// `taskbridge bench api|bridge`: speed and footprint, measured as ratios
/// against baselines taken in the same run. Build with `-c release`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (run with swift run -c release).", subcommands: [API.self, BridgeBench.self, VerifyBench.self])

    struct API: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "api", abstract: "Embedded TaskManager through the Swift client over loopback: creates/s, claim+complete/s, GET/s, server RSS.")
        @Option(help: "Creates to send.") var creates = 20_000
        @Option(help: "Requests in flight for creates and GETs.") var concurrency = 64
        @Flag(help: "Also time each route alone, one request at a time (where a claim+complete pair spends its time).") var sequential = false
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let dir = try TemporaryDirectory(prefix: "bench-api")
            let key = "bench-" + UUID().uuidString
            let server = try ChildProcess.start(["serve", "--listen", "127.0.0.1:0", "--database", dir.path("tm.db")],
                                               environment: ["TASKMANAGER_API_KEY": key])
            defer { server.stop() }
            let url = try await server.waitForLine(prefix: "listening ").replacingOccurrences(of: "listening ", with: "")
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
                                _ = try await client.createTask(type: "bench.a", params: ["n": .int(Int64(i)), "s": "payload"])
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
                                    guard let t = try await client.claimTask(workerID: "w\(w)", taskTypeID: type.id, policy: .fifo) else { break }
                                    _ = try await client.completeTask(id: t.id, workerID: "w\(w)", success: true, result: ["ok": true])
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
                let c1 = try await Bench.rate(n) { for i in 0..<n { ids.append(try await client.createTask(type: "bench.a", params: ["seq": .int(Int64(i))]).id) } }
                var claimed: [Int64] = []
                let c2 = try await Bench.rate(n) { for _ in 0..<n { if let t = try await client.claimTask(workerID: "s", taskTypeID: type.id) { claimed.append(t.id) } } }
                let c3 = try await Bench.rate(claimed.count) { for id in claimed { _ = try await client.completeTask(id: id, workerID: "s", success: true) } }
                let c4 = try await Bench.rate(n) { for id in ids { _ = try await client.getTask(id: id) } }
                let c5 = try await Bench.rate(n) { for _ in 0..<n { _ = try await client.health() } }
                print(String(format: "sequential req/s: create %.0f  claim %.0f  complete %.0f  get %.0f  health %.0f", c1, c2, c3, c4, c5))
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

    struct BridgeBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bridge",
            abstract: "Trigger cost on legacy inserts, forward throughput vs the server's own create rate, latencies, idle CPU and RSS.")
        @Option(help: "Rows for the throughput run.") var rows = 10_000
        @Option(help: "Seconds of the 500 rows/s latency run.") var latencySeconds = 10.0
        @Option(help: "Run only these parts (comma-separated: inserts, throughput, latency, mirror, idle).") var only: String?
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            var results: [(String, String, String)] = []
            let parts = Set((only ?? "inserts,throughput,latency,mirror,idle").split(separator: ",").map(String.init))
            // 1. Producer cost of the capture triggers.
            for sync in ["FULL", "NORMAL"] where parts.contains("inserts") {
                let n = sync == "FULL" ? 2000 : 20_000
                let r = try await Bench.insertCost(rows: n, synchronous: sync)
                results.append(("legacy inserts/s, no triggers (synchronous=\(sync))", String(format: "%.0f", r.baseline), ""))
                results.append(("  cost with triggers, off type", String(format: "%.2fx", r.baseline / r.off), "<= 1.4x"))
                results.append(("  cost with triggers, forward type (trigger claims)", String(format: "%.2fx", r.baseline / r.forward), "<= 1.6x"))
            }
            // 2. Forward throughput vs the server's own create rate.
            if parts.contains("throughput") {
            let t = try await Bench.forwardThroughput(rows: rows)
            results.append(("server create rate, same run (creates/s)", String(format: "%.0f", t.direct), ""))
            results.append(("bridge forward rate (rows/s)", String(format: "%.0f", t.bridge), ""))
            results.append(("  ratio", String(format: "%.2f", t.bridge / t.direct), ">= 0.8"))
            }
            // 3. Commit-to-task-visible latency at 500 rows/s.
            if parts.contains("latency") {
            let l = try await Bench.captureLatency(rate: 500, seconds: latencySeconds)
            results.append(("commit -> task visible p50 (ms) at 500 rows/s", String(format: "%.1f", l.p50 * 1000), "<= 5"))
            results.append(("commit -> task visible p99 (ms) at 500 rows/s", String(format: "%.1f", l.p99 * 1000), "<= 50"))
            }
            // 4. Completion -> legacy terminal with 10,000 in flight.
            if parts.contains("mirror") {
            let m = try await Bench.mirrorLatency(inFlight: 10_000, completions: 500)
            results.append(("API completion -> legacy terminal p50 (s), 10,000 in flight", String(format: "%.2f", m.p50), "<= 1"))
            results.append(("API completion -> legacy terminal p99 (s)", String(format: "%.2f", m.p99), ""))
            }
            // 5. Idle footprint of a real `taskbridge run` (embedded server included).
            if parts.contains("idle") {
            let idle = try await Bench.idleFootprint()
            results.append(("idle CPU of taskbridge run (% of a core)", String(format: "%.2f", idle.cpuPercent), "< 1"))
            results.append(("RSS of taskbridge run, idle (MB)", String(format: "%.1f", idle.rssMB), "< 64"))
            }
            Bench.report(results, json: json)
        }
    }
}

extension BenchCommand {
    struct VerifyBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify", abstract: "verify over N bridged rows against the embedded server: wall time and peak RSS of the verify process.")
        @Option(help: "Bridged rows.") var rows = 100_000
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let h = try await BridgeHarness.start(types: [Bench.benchType], configure: Bench.production, startEngine: false)
            defer { Task { await h.shutdown() } }
            try await h.store.install()
            try await h.store.setMode(taskType: "bench_type", mode: "forward", reason: nil, host: "bench", actor: "bench")
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
            FileHandle.standardError.write(Data("forwarded \(rows) rows in \(ContinuousClock.now - setup); verifying\n".utf8))
            let conf = try h.writeConfig(name: "verify.conf", url: h.tm.baseURL)
            let start = ContinuousClock.now
            let child = try ChildProcess.start(["verify", "--config", conf, "--grace", "0", "--json"], environment: ["TASKMANAGER_API_KEY": h.tm.apiKey])
            let status = await child.child.wait()
            let wall = (ContinuousClock.now - start) / .seconds(1)
            var usage = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &usage)
            let peak = Double(usage.ru_maxrss) / 1024
            if status != 0 { FileHandle.standardError.write(Data("verify failed: \(child.child.stderr.suffix(2000))\n".utf8)) }
            Bench.report([
                ("verify exit status", "\(status)", "0"),
                ("verify wall time, \(rows) rows (s)", String(format: "%.1f", wall), "< 60"),
                ("verify peak RSS (MB)", String(format: "%.1f", peak), "< 128"),
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
            CLI.printJSON(.array(rows.map { ["metric": .string($0.0), "value": .string($0.1), "target": .string($0.2)] }))
        } else {
            print(CLI.table(["metric", "value", "target"], rows.map { [$0.0, $0.1, $0.2] }))
        }
    }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }

    /// Single-row autocommit inserts, the way a producer writes, into three
    /// identical files: no bridge, bridge installed with the type off, and
    /// with the type in forward (the trigger claims). Rounds alternate to
    /// spread machine noise evenly; the median round counts.
    static func insertCost(rows: Int, synchronous: String) async throws -> (baseline: Double, off: Double, forward: Double) {
        let dir = try TemporaryDirectory(prefix: "bench-insert")
        var rates: [String: [Double]] = [:]
        for round in 0..<3 {
            for scenario in ["baseline", "off", "forward"] {
                let path = dir.path("\(scenario)-\(round).db")
                try LegacyFixture.a.create(at: path)
                if scenario != "baseline" {
                    let store = try LegacyQueueStore.open(path: path, table: "task_queue", bridgeID: "taskbridge", createIfMissing: false).store
                    try await store.install()
                    try await store.setMode(taskType: "t", mode: scenario, reason: nil, host: "bench", actor: "bench")
                    try store.close()
                }
                rates[scenario, default: []].append(try producerInsertRate(path: path, rows: rows, synchronous: synchronous))
            }
        }
        func median(_ s: String) -> Double { percentile(rates[s]!, 0.5) }
        return (median("baseline"), median("off"), median("forward"))
    }

    /// Synchronous on purpose: the producer's own cost, without async hops.
    static func producerInsertRate(path: String, rows: Int, synchronous: String) throws -> Double {
        let q = try DatabaseQueue(path: path)
        defer { try? q.close() }
        try q.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        let params = #"{"channel_url": "https://youtube.com/@bench", "top_n": 50}"#
        let start = ContinuousClock.now
        try q.writeWithoutTransaction { db in
            let stmt = try db.makeStatement(
                sql: "INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at) VALUES ('t', ?, ?, datetime('now'), datetime('now'))")
            for i in 0..<rows {
                try stmt.execute(arguments: [params, 1 + i % 10])  // autocommit: one transaction per row, as producers do
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

    static let benchType = TypeMapping(legacyType: "bench_type", name: "Bench.Forward", mode: .forward, paramSchema: ["type": "object"])

    static func forwardThroughput(rows: Int) async throws -> (direct: Double, bridge: Double) {
        let h = try await BridgeHarness.start(types: [benchType], configure: Self.production, startEngine: false)
        defer { Task { await h.shutdown() } }
        // The server's own rate, same process, same client settings.
        _ = try await h.bridgeClient.registerTaskType(name: "Bench.Direct", version: "1", paramSchema: ["type": "object"])
        let direct = try await rate(rows) {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for w in 0..<64 {
                    g.addTask {
                        var i = w
                        while i < rows {
                            _ = try await h.bridgeClient.createTask(type: "Bench.Direct", params: ["n": .int(Int64(i))], priority: 5)
                            i += 64
                        }
                    }
                }
                try await g.waitForAll()
            }
        }
        try await h.store.install()
        try await h.store.setMode(taskType: "bench_type", mode: "forward", reason: nil, host: "bench", actor: "bench")
        let producer = try h.producer()
        try producer.insertBatch(type: "bench_type", parameters: (0..<rows).map { #"{"n": \#($0)}"# })
        h.startEngine()
        _ = try await h.typeID(benchType.name)
        let bridge = try await rate(rows) {
            _ = try await eventually(timeout: .seconds(600), interval: .milliseconds(5)) {
                try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == rows
            }
        }
        return (direct, bridge)
    }

    static func captureLatency(rate: Double, seconds: Double) async throws -> (p50: Double, p99: Double) {
        let h = try await BridgeHarness.start(types: [benchType], configure: Self.production)
        defer { Task { await h.shutdown() } }
        _ = try await h.typeID(benchType.name)
        let producer = try h.producer()
        var inserted: [Int64: Double] = [:]
        let total = Int(rate * seconds)
        let start = ContinuousClock.now
        for i in 0..<total {
            let id = try producer.insert(type: "bench_type", parameters: #"{"n": \#(i)}"#)
            inserted[id] = Date().timeIntervalSince1970
            let next = start + .microseconds(Int64(Double(i + 1) / rate * 1_000_000))
            if next > ContinuousClock.now { try await Task.sleep(until: next) }
        }
        _ = try await eventually(timeout: .seconds(120)) {
            try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state <> 'intent'") == total
        }
        let sent = try producer.read { db in
            try Row.fetchAll(db, sql: "SELECT legacy_id, sent_at FROM _taskbridge_ledger").map { ($0["legacy_id"] as Int64, $0["sent_at"] as String) }
        }
        let lat = sent.compactMap { id, at -> Double? in
            guard let t0 = inserted[id], let t1 = LegacyTimestamp.parse(at) else { return nil }
            return t1.timeIntervalSince1970 - t0
        }
        return (percentile(lat, 0.5), percentile(lat, 0.99))
    }

    static func mirrorLatency(inFlight: Int, completions: Int) async throws -> (p50: Double, p99: Double) {
        let h = try await BridgeHarness.start(types: [benchType], configure: Self.production)
        defer { Task { await h.shutdown() } }
        let typeID = try await h.typeID(benchType.name)
        let producer = try h.producer()
        try producer.insertBatch(type: "bench_type", parameters: (0..<inFlight).map { #"{"n": \#($0)}"# })
        _ = try await eventually(timeout: .seconds(600)) {
            try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == inFlight
        }
        // Complete tasks at a steady pace while the rest stay in flight.
        var completedAt: [Int64: Double] = [:]
        let start = ContinuousClock.now
        for i in 0..<completions {
            guard let t = try await h.tm.client.claimTask(workerID: "bench", taskTypeID: typeID, policy: .fifo) else { break }
            _ = try await h.tm.client.completeTask(id: t.id, workerID: "bench", success: true, result: ["ok": true])
            completedAt[t.id] = Date().timeIntervalSince1970
            try await Task.sleep(until: start + .milliseconds(10 * (i + 1)))
        }
        _ = try await eventually(timeout: .seconds(120)) {
            try h.scalar("SELECT COUNT(*) FROM task_queue WHERE status = 'completed'") == completedAt.count
        }
        let rows = try producer.read { db in
            try Row.fetchAll(db, sql: "SELECT l.tm_task_id, q.completed_at FROM _taskbridge_ledger l JOIN task_queue q ON q.id = l.legacy_id WHERE q.status = 'completed'")
                .map { ($0["tm_task_id"] as Int64, $0["completed_at"] as String) }
        }
        let lat = rows.compactMap { id, at -> Double? in
            guard let t0 = completedAt[id], let t1 = LegacyTimestamp.parse(at) else { return nil }
            return t1.timeIntervalSince1970 - t0
        }
        return (percentile(lat, 0.5), percentile(lat, 0.99))
    }

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
        let child = try ChildProcess.start(["run", "--config", dir.path("bridge.conf")], environment: ["TASKMANAGER_API_KEY": "idle-bench-key"])
        defer { child.stop() }
        _ = try await eventually(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: dir.path("worker_queue.db")) }
        try await Task.sleep(for: .seconds(3))
        guard let c0 = ProcessStats.cpuSeconds(pid: child.pid) else { throw CLIError.runtime("cannot read /proc for the child") }
        let t0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(10))
        let c1 = ProcessStats.cpuSeconds(pid: child.pid) ?? c0
        let wall = (ContinuousClock.now - t0) / .seconds(1)
        return ((c1 - c0) / wall * 100, ProcessStats.rssMegabytes(pid: child.pid) ?? -1)
    }
}

/// A child `taskbridge` process (this same binary).
final class ChildProcess: Sendable {
    let child: AsyncProcess
    var pid: Int32 { child.pid }

    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        env["LOG_LEVEL"] = "error"
        let c = ChildProcess(child: AsyncProcess(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                                                 arguments: arguments, environment: env))
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
        guard let found else { throw CLIError.runtime("child did not print \(prefix)") }
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
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
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
