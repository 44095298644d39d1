import ArgumentParser
import Foundation
import GRDB
import LegacyQueue
import QueueSimulators
import TaskBridgeTesting
import TaskManagerClient

extension BenchCommand {
    /// Several module queues on one host (issue 14): N queues bridged by one
    /// `taskbridge run` against the same N queues bridged by N `run`
    /// processes, in one run, in the shape users run (`serve` separate, one
    /// producer process per queue committing one row per transaction).
    struct FleetBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fleet",
            abstract: "N queues in one `run` vs N `run` processes: latency, CPU per row, idle CPU and RSS.")
        @Option(help: "Queues.") var queues = 8
        @Option(help: "Rows per second per queue.") var rate = 50.0
        @Option(help: "Seconds producers insert.") var seconds = 10.0
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let direct = try await Shape.throughput(rows: 2000).directRate
            var results: [(String, String, String)] = [
                ("server create rate, direct client (creates/s)", String(format: "%.0f", direct), "")
            ]
            let one = try await Fleet.measure(queues: queues, rate: rate, seconds: seconds, oneProcess: true)
            let many = try await Fleet.measure(queues: queues, rate: rate, seconds: seconds, oneProcess: false)
            let label = "\(queues) queues at \(Int(rate)) rows/s each"
            results.append(
                (
                    "one run, \(label): commit -> task visible p50 / p99 (ms)",
                    String(format: "%.1f / %.1f", one.p50 * 1000, one.p99 * 1000), "<= 5 / 50"
                ))
            results.append(
                (
                    "\(queues) runs, \(label): commit -> task visible p50 / p99 (ms)",
                    String(format: "%.1f / %.1f", many.p50 * 1000, many.p99 * 1000), ""
                ))
            results.append(
                ("one run: bridge CPU per forwarded row (ms)", String(format: "%.3f", one.cpuPerRow * 1000), ""))
            results.append(
                ("\(queues) runs: bridge CPU per forwarded row (ms)", String(format: "%.3f", many.cpuPerRow * 1000), "")
            )
            results.append(
                ("  ratio one / \(queues)", String(format: "%.2f", one.cpuPerRow / many.cpuPerRow), "<= 1"))
            results.append(
                (
                    "one run, \(queues) idle queues: CPU (% of a core)", String(format: "%.2f", one.idleCPUPercent),
                    "< 1"
                ))
            results.append(
                ("one run, \(queues) idle queues: RSS (MB)", String(format: "%.1f", one.idleRSSMB), "< 96"))
            results.append(
                (
                    "\(queues) runs, idle: CPU (% of a core, all together)",
                    String(format: "%.2f", many.idleCPUPercent), ""
                ))
            results.append(
                ("\(queues) runs, idle: RSS (MB, all together)", String(format: "%.1f", many.idleRSSMB), ""))
            Bench.report(results, json: json)
        }
    }
}

/// One measurement of the fleet shape.
enum Fleet {
    struct Result {
        var p50: Double, p99: Double, cpuPerRow: Double, idleCPUPercent: Double, idleRSSMB: Double
    }

    static func measure(queues n: Int, rate: Double, seconds: Double, oneProcess: Bool) async throws -> Result {
        let s = try await Shape()
        let files = (0..<n).map { s.dir.path("queue\($0).db") }
        for f in files { try LegacyFixture.a.create(at: f) }
        func queueTable(_ i: Int, named: Bool) -> String {
            let at = named ? "queues.q\(i)" : "legacy"
            let types = named ? "queues.q\(i).types" : "types"
            return """
                [\(at)]
                database = "\(files[i])"
                [\(types).bench_type]
                name = "Bench.Fleet"
                mode = "forward"
                """
        }
        let head = """
            [taskmanager]
            url = "\(s.url)"
            [bridge]
            metrics_listen = "off"
            """
        var bridges: [ChildProcess] = []
        if oneProcess {
            let path = s.dir.path("fleet.conf")
            try (head + "\n" + (0..<n).map { queueTable($0, named: true) }.joined(separator: "\n"))
                .write(toFile: path, atomically: true, encoding: .utf8)
            bridges.append(
                try ChildProcess.start(["run", "--config", path], environment: ["TASKMANAGER_API_KEY": s.key]))
        } else {
            for i in 0..<n {
                let path = s.dir.path("q\(i).conf")
                try (head + "\n" + queueTable(i, named: false)).write(toFile: path, atomically: true, encoding: .utf8)
                bridges.append(
                    try ChildProcess.start(["run", "--config", path], environment: ["TASKMANAGER_API_KEY": s.key]))
            }
        }
        func count(_ file: String, _ sql: String) -> Int {
            guard let q = try? observerConnection(file) else { return -1 }
            defer { try? q.close() }
            return (try? q.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }) ?? -1
        }
        let up = try await eventually(timeout: .seconds(60), interval: .milliseconds(50)) {
            files.allSatisfy { count($0, "SELECT COUNT(*) FROM _taskbridge_mode") == 1 }
        }
        guard up else { throw BenchError("the bridges did not start") }
        _ = try await eventually(timeout: .seconds(30), interval: .milliseconds(50)) {
            (try? await s.client.getTaskType(name: "Bench.Fleet")) != nil
        }
        // Idle: nothing flowing, after the start-up work settled.
        try await Task.sleep(for: .seconds(3))
        let pids = bridges.map(\.pid)
        func cpu() -> Double { pids.map { ProcessStats.cpuSeconds(pid: $0) ?? 0 }.reduce(0, +) }
        let idle0 = cpu(), t0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(10))
        let idleCPU = (cpu() - idle0) / ((ContinuousClock.now - t0) / .seconds(1)) * 100
        let idleRSS = pids.map { ProcessStats.rssMegabytes(pid: $0) ?? 0 }.reduce(0, +)

        // Load: one producer process per queue, paced.
        let cpu0 = cpu()
        var producers: [ChildProcess] = []
        for f in files {
            producers.append(
                try ChildProcess.bench([
                    "produce", "--database", f, "--type", "bench_type", "--rate", String(rate),
                    "--seconds", String(seconds),
                ]))
        }
        var committed: [[Int64: Double]] = []
        for p in producers {
            guard await p.child.wait() == 0 else { throw BenchError("producer failed: \(p.child.stderr.suffix(500))") }
            var c: [Int64: Double] = [:]
            for line in p.child.stdout.split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count == 2, let id = Int64(f[0]), let t = Double(f[1]) { c[id] = t }
            }
            committed.append(c)
        }
        _ = try await eventually(timeout: .seconds(180), interval: .milliseconds(50)) {
            zip(files, committed).allSatisfy {
                count($0, "SELECT COUNT(*) FROM _taskbridge_ledger WHERE state <> 'intent'") == $1.count
            }
        }
        let rows = committed.map(\.count).reduce(0, +)
        let cpuPerRow = (cpu() - cpu0) / Double(max(1, rows))
        var lat: [Double] = []
        for (f, c) in zip(files, committed) {
            let q = try observerConnection(f)
            let sent = try await q.read { db in
                try Row.fetchAll(db, sql: "SELECT legacy_id, sent_at FROM _taskbridge_ledger").map {
                    ($0["legacy_id"] as Int64, $0["sent_at"] as String?)
                }
            }
            try q.close()
            lat += sent.compactMap { id, at -> Double? in
                guard let t0 = c[id], let at, let t1 = LegacyTimestamp.parse(at) else { return nil }
                return t1.timeIntervalSince1970 - t0
            }
        }
        for b in bridges { b.stop() }
        for b in bridges { _ = await b.child.wait() }
        await s.stop()
        return Result(
            p50: Bench.percentile(lat, 0.5), p99: Bench.percentile(lat, 0.99), cpuPerRow: cpuPerRow,
            idleCPUPercent: idleCPU, idleRSSMB: idleRSS)
    }
}
