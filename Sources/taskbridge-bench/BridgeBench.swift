import ArgumentParser
import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import QueueSimulators
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel

extension BenchCommand {
    /// The bridge as users run it: `taskbridge serve` and `taskbridge run` as
    /// separate processes, producers in a process of their own committing one
    /// row per transaction. CPU is read from /proc for each process.
    struct BridgeBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bridge",
            abstract:
                """
                Trigger cost, forward rate and CPU per row vs the server, commit-to-task latency at 100 and 500 \
                rows/s, 
                """
                    + "mirror under faults with restarts, idle CPU and RSS.")
        @Option(help: "Rows for the throughput run.") var rows = 10_000
        @Option(help: "Seconds of each latency run.") var latencySeconds = 10.0
        @Option(help: "Tasks finished during the fault run.") var faultTasks = 200
        @Option(help: "Parts to run (comma-separated: inserts, throughput, latency, faults, idle).") var only: String?
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            var results: [(String, String, String)] = []
            let parts = Set((only ?? "inserts,throughput,latency,faults,idle").split(separator: ",").map(String.init))
            for sync in ["FULL", "NORMAL"] where parts.contains("inserts") {
                let r = try await Bench.insertCost(rows: sync == "FULL" ? 2000 : 20_000, synchronous: sync)
                results.append(
                    ("legacy inserts/s, no triggers (synchronous=\(sync))", String(format: "%.0f", r.baseline), ""))
                results.append(
                    ("  cost with triggers, off type", String(format: "%.2fx", r.baseline / r.off), "<= 1.4x"))
                results.append(
                    (
                        "  cost with triggers, forward type (trigger claims)",
                        String(format: "%.2fx", r.baseline / r.forward), "<= 1.6x"
                    ))
                results.append(
                    (
                        "  cost with triggers, forward 25 % canary by params",
                        String(format: "%.2fx", r.baseline / r.canary), "<= 1.6x"
                    ))
            }
            if parts.contains("throughput") {
                let t = try await Shape.throughput(rows: rows)
                results.append(
                    ("server create rate, direct client (creates/s)", String(format: "%.0f", t.directRate), ""))
                results.append(("bridge forward rate (rows/s)", String(format: "%.0f", t.bridgeRate), ""))
                results.append(("  ratio", String(format: "%.2f", t.bridgeRate / t.directRate), ">= 0.8"))
                results.append(
                    ("server CPU per create, direct (ms)", String(format: "%.3f", t.serverCPUPerCreate * 1000), ""))
                results.append(
                    ("bridge CPU per forwarded row (ms)", String(format: "%.3f", t.bridgeCPUPerRow * 1000), ""))
                results.append(
                    ("  ratio bridge/server", String(format: "%.2f", t.bridgeCPUPerRow / t.serverCPUPerCreate), "<= 1"))
            }
            if parts.contains("latency") {
                let slow = try await Shape.latency(rate: 100, seconds: latencySeconds)
                let fast = try await Shape.latency(rate: 500, seconds: latencySeconds)
                results.append(
                    (
                        "commit -> task visible p50 / p99 (ms) at 100 rows/s",
                        String(format: "%.1f / %.1f", slow.p50 * 1000, slow.p99 * 1000), ""
                    ))
                results.append(
                    (
                        "commit -> task visible p50 / p99 (ms) at 500 rows/s",
                        String(format: "%.1f / %.1f", fast.p50 * 1000, fast.p99 * 1000), "<= 5 / 50"
                    ))
                results.append(("  p50 at 500 / p50 at 100", String(format: "%.2f", fast.p50 / slow.p50), "<= 2"))
                for (rate, r) in [(100, slow), (500, fast)] {
                    results.append(
                        (
                            "bridge / server CPU per row at \(rate) rows/s (ms)",
                            String(format: "%.3f / %.3f", r.bridgeCPUPerRow * 1000, r.serverCPUPerRow * 1000), ""
                        ))
                    results.append(
                        ("  ratio bridge/server", String(format: "%.2f", r.bridgeCPUPerRow / r.serverCPUPerRow), "<= 1"))
                }
            }
            if parts.contains("faults") {
                let f = try await Shape.mirrorUnderFaults(tasks: faultTasks)
                results.append(
                    (
                        "task finished -> row terminal, no faults, p50 / p99 (s)",
                        String(format: "%.2f / %.2f", f.clean.p50, f.clean.p99), ""
                    ))
                results.append(
                    (
                        "  under faults and restarts every ~1.4 s, p50 / p99 (s)",
                        String(format: "%.2f / %.2f", f.faulty.p50, f.faulty.p99), "p50 <= 10"
                    ))
                results.append(("  bridge restarts during the fault run", "\(f.restarts)", ""))
            }
            if parts.contains("idle") {
                let idle = try await Bench.idleFootprint()
                results.append(
                    ("idle CPU of taskbridge run (% of a core)", String(format: "%.2f", idle.cpuPercent), "< 1"))
                results.append(("RSS of taskbridge run, idle (MB)", String(format: "%.1f", idle.rssMB), "< 64"))
            }
            Bench.report(results, json: json)
        }
    }

    /// A producer process: one row per transaction at a steady rate, then
    /// the commit time of each row (`id epoch` lines) on stdout.
    struct Produce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "produce", abstract: "(internal) a legacy producer process.",
            shouldDisplay: false)
        @Option var database: String
        @Option var type: String
        @Option var rate: Double
        @Option var seconds: Double

        func run() async throws {
            let producer = try LegacyProducer(path: database)
            let total = Int(rate * seconds)
            var lines: [String] = []
            lines.reserveCapacity(total)
            let start = ContinuousClock.now
            for i in 0..<total {
                let id = try producer.insert(type: type, parameters: #"{"n": \#(i), "p": "\#(UUID().uuidString)"}"#)
                lines.append("\(id) \(Date().timeIntervalSince1970)")
                let next = start + .microseconds(Int64(Double(i + 1) / rate * 1_000_000))
                if next > ContinuousClock.now { try await Task.sleep(until: next) }
            }
            print(lines.joined(separator: "\n"))
        }
    }
}

/// The processes of one measurement: a `serve`, a `run` against it (or
/// against a proxy in front of it), their files.
final class Shape: Sendable {
    let dir: TemporaryDirectory
    let key = "bench-" + UUID().uuidString
    let server: ChildProcess
    let url: String
    let client: TaskManagerClient

    init() async throws {
        dir = try TemporaryDirectory(prefix: "bench-shape")
        server = try ChildProcess.start(
            ["serve", "--listen", "127.0.0.1:0", "--database", dir.path("tm.db"), "--config", dir.path("none.conf")],
            environment: ["TASKMANAGER_API_KEY": key])
        url = try await server.waitForLine(prefix: "listening ").replacingOccurrences(of: "listening ", with: "")
        var cc = try ClientConfiguration(baseURL: url, apiKey: key)
        cc.maxConcurrentRequests = 64
        cc.maxAttempts = 1
        client = TaskManagerClient(configuration: cc)
        try LegacyFixture.a.create(at: legacyPath)
    }

    var legacyPath: String { dir.path("worker_queue.db") }

    func config(url: String? = nil) throws -> String {
        let text = """
            [legacy]
            database = "\(legacyPath)"
            [taskmanager]
            url = "\(url ?? self.url)"
            [bridge]
            metrics_listen = "off"
            [types.bench_type]
            name = "Bench.Forward"
            mode = "forward"
            """
        let path = dir.path("bridge.conf")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func startBridge(url: String? = nil) throws -> ChildProcess {
        try ChildProcess.start(["run", "--config", try config(url: url)], environment: ["TASKMANAGER_API_KEY": key])
    }

    func scalar(_ sql: String) throws -> Int {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    func ready() async throws {
        let ok = try await eventually(timeout: .seconds(30), interval: .milliseconds(50)) {
            ((try? self.scalar("SELECT COUNT(*) FROM _taskbridge_mode")) ?? 0) == 1
        }
        guard ok else { throw BenchError("the bridge did not start") }
        _ = try await eventually(timeout: .seconds(30), interval: .milliseconds(50)) {
            (try? await self.client.getTaskType(name: "Bench.Forward")) != nil
        }
    }

    func stop() async {
        await client.shutdown()
        server.stop()
        _ = await server.child.wait()
    }

    /// Forward rate and CPU per row of the bridge vs the server's own create
    /// rate and CPU per create, in one run.
    static func throughput(
        rows: Int
    ) async throws
        -> (directRate: Double, bridgeRate: Double, serverCPUPerCreate: Double, bridgeCPUPerRow: Double)
    {
        let s = try await Shape()
        _ = try await s.client.registerTaskType(name: "Bench.Direct", version: "1", paramSchema: ["type": "object"])
        let cpu0 = ProcessStats.cpuSeconds(pid: s.server.pid) ?? 0
        let direct = try await Bench.rate(rows) {
            try await withThrowingTaskGroup(of: Void.self) { g in
                for w in 0..<64 {
                    g.addTask {
                        var i = w
                        while i < rows {
                            _ = try await s.client.createTask(
                                type: "Bench.Direct", params: ["n": .int(Int64(i))], priority: 5)
                            i += 64
                        }
                    }
                }
                try await g.waitForAll()
            }
        }
        let serverPerCreate = ((ProcessStats.cpuSeconds(pid: s.server.pid) ?? 0) - cpu0) / Double(rows)
        // The bridge installs its objects; rows then arrive claimed by the trigger.
        let bridge = try s.startBridge()
        try await s.ready()
        bridge.stop()
        _ = await bridge.child.wait()
        let producer = try LegacyProducer(path: s.legacyPath)
        try producer.insertBatch(type: "bench_type", parameters: (0..<rows).map { #"{"n": \#($0)}"# })
        try producer.close()
        let again = try s.startBridge()
        let b0 = ContinuousClock.now
        _ = try await eventually(timeout: .seconds(600), interval: .milliseconds(5)) {
            (try? s.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'")) == rows
        }
        let wall = (ContinuousClock.now - b0) / .seconds(1)
        let bridgeCPU = ProcessStats.cpuSeconds(pid: again.pid) ?? 0
        again.stop()
        _ = await again.child.wait()
        await s.stop()
        return (direct, Double(rows) / wall, serverPerCreate, bridgeCPU / Double(rows))
    }

    /// Commit (in the producer process) to the bridge holding the task id.
    static func latency(
        rate: Double, seconds: Double
    ) async throws -> (p50: Double, p99: Double, bridgeCPUPerRow: Double, serverCPUPerRow: Double) {
        let s = try await Shape()
        let bridge = try s.startBridge()
        try await s.ready()
        try await Task.sleep(for: .seconds(1))
        let cpu0 = ProcessStats.cpuSeconds(pid: bridge.pid) ?? 0
        let server0 = ProcessStats.cpuSeconds(pid: s.server.pid) ?? 0
        let producer = try ChildProcess.bench([
            "produce", "--database", s.legacyPath, "--type", "bench_type",
            "--rate", String(rate), "--seconds", String(seconds),
        ])
        let status = await producer.child.wait()
        guard status == 0 else { throw BenchError("producer failed: \(producer.child.stderr.suffix(1000))") }
        var committed: [Int64: Double] = [:]
        for line in producer.child.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let id = Int64(f[0]), let t = Double(f[1]) { committed[id] = t }
        }
        _ = try await eventually(timeout: .seconds(120), interval: .milliseconds(20)) {
            (try? s.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state <> 'intent'")) == committed.count
        }
        let cpu = (ProcessStats.cpuSeconds(pid: bridge.pid) ?? 0) - cpu0
        let serverCPU = (ProcessStats.cpuSeconds(pid: s.server.pid) ?? 0) - server0
        let q = try observerConnection(s.legacyPath)
        let sent = try await q.read { db in
            try Row.fetchAll(db, sql: "SELECT legacy_id, sent_at FROM _taskbridge_ledger").map {
                ($0["legacy_id"] as Int64, $0["sent_at"] as String?)
            }
        }
        try q.close()
        let lat = sent.compactMap { id, at -> Double? in
            guard let t0 = committed[id], let at, let t1 = LegacyTimestamp.parse(at) else { return nil }
            return t1.timeIntervalSince1970 - t0
        }
        bridge.stop()
        _ = await bridge.child.wait()
        await s.stop()
        let n = Double(max(1, committed.count))
        return (Bench.percentile(lat, 0.5), Bench.percentile(lat, 0.99), cpu / n, serverCPU / n)
    }

    /// Task finished in TaskManager -> legacy row terminal: first without
    /// faults, then through a proxy that delays (0 to 2 s), fails (5xx,
    /// HTML) and garbles answers while the bridge is SIGKILLed and restarted
    /// every 1.4 s on average.
    static func mirrorUnderFaults(
        tasks: Int
    ) async throws
        -> (clean: (p50: Double, p99: Double), faulty: (p50: Double, p99: Double), restarts: Int)
    {
        let s = try await Shape()
        let proxy = FaultProxy(upstream: s.url)
        try await proxy.start()
        var bridge = try s.startBridge(url: proxy.baseURL)
        try await s.ready()
        let producer = try LegacyProducer(path: s.legacyPath)
        try producer.insertBatch(type: "bench_type", parameters: (0..<(2 * tasks)).map { #"{"m": \#($0)}"# })
        _ = try await eventually(timeout: .seconds(120), interval: .milliseconds(20)) {
            (try? s.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'")) == 2 * tasks
        }
        let typeID = try await s.client.getTaskType(name: "Bench.Forward").id
        func finish(_ n: Int, pace: Duration) async throws -> [Int64: Double] {
            var done: [Int64: Double] = [:]
            for _ in 0..<n {
                guard let t = try await s.client.claimTask(workerID: "bench", taskTypeID: typeID, policy: .fifo) else {
                    break
                }
                _ = try await s.client.completeTask(id: t.id, workerID: "bench", success: true, result: ["ok": true])
                done[t.id] = Date().timeIntervalSince1970
                try await Task.sleep(for: pace)
            }
            return done
        }
        func latencies(
            _ done: [Int64: Double], timeout: Duration, while waiting: () async throws -> Void
        ) async throws -> [Double] {
            let ids = done.keys.map(String.init).joined(separator: ",")
            _ = try await eventually(timeout: timeout, interval: .milliseconds(50)) {
                try await waiting()
                return
                    (try? s.scalar(
                        """
                        SELECT COUNT(*) FROM task_queue q JOIN _taskbridge_ledger l ON l.legacy_id = q.id
                        WHERE q.status = 'completed' AND l.tm_task_id IN (\(ids))
                        """)) == done.count
            }
            let q = try observerConnection(s.legacyPath)
            defer { try? q.close() }
            let rows = try await q.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT l.tm_task_id, q.completed_at FROM _taskbridge_ledger l JOIN task_queue q ON q.id =
                            l.legacy_id
                        WHERE q.status = 'completed' AND l.tm_task_id IN (\(ids))
                        """
                ).map { ($0["tm_task_id"] as Int64, $0["completed_at"] as String) }
            }
            return rows.compactMap { id, at in
                guard let t0 = done[id], let t1 = LegacyTimestamp.parse(at) else { return nil }
                return t1.timeIntervalSince1970 - t0
            }
        }
        let cleanDone = try await finish(tasks, pace: .milliseconds(10))
        let clean = try await latencies(cleanDone, timeout: .seconds(120)) {}
        proxy.set(.chaos)
        var restarts = 0
        var nextRestart = ContinuousClock.now + .milliseconds(Int.random(in: 400...2400))
        let faultyDone = try await finish(tasks, pace: .milliseconds(20))
        let faulty = try await latencies(faultyDone, timeout: .seconds(600)) {
            if ContinuousClock.now >= nextRestart {
                await bridge.child.kill()
                bridge = try s.startBridge(url: proxy.baseURL)
                restarts += 1
                nextRestart = ContinuousClock.now + .milliseconds(Int.random(in: 400...2400))
            }
        }
        await bridge.child.kill()
        await proxy.stop()
        await s.stop()
        return (
            (Bench.percentile(clean, 0.5), Bench.percentile(clean, 0.99)),
            (Bench.percentile(faulty, 0.5), Bench.percentile(faulty, 0.99)), restarts
        )
    }
}

extension ChildProcess {
    /// This benchmark binary again (the producer process).
    static func bench(_ arguments: [String]) throws -> ChildProcess {
        let c = ChildProcess(
            child: AsyncProcess(
                executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                arguments: arguments, environment: ProcessInfo.processInfo.environment))
        try c.child.start()
        return c
    }
}
