import ArgumentParser
import BridgeConfig
import BridgeEngine
import BridgeRuntime
import Foundation
import GRDB
import LegacyQueue
import Logging
import QueueSimulators
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// `taskbridge demo`: a self-contained rehearsal of a migration on fresh
/// files under data/demo/: PrismQ-style producers, legacy workers running
/// the unchanged BaseWorker claim SQL, TaskManager workers, the bridge, and
/// a live cutover. Ends with a summary whose double-execution count must be 0.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Rehearse a migration end to end on fresh files.")

    @Option(help: "How long producers insert.") var seconds: Double = 20
    @Option(help: "Rows inserted per second (all producers together).") var rate: Double = 40
    @Option(help: "Directory for the demo's files (a fresh subdirectory is created).") var dir: String = "data/demo"
    @Flag(
        help: "Insert no deliberately broken rows (nothing ends in quarantine), e.g. to walk the runbook on the result."
    ) var clean = false

    func run() async throws {
        let clean = self.clean
        guard seconds > 0, rate > 0, rate <= 5000 else {
            throw CLIError.config("--seconds must be > 0 and --rate in (0, 5000]")
        }
        let stamp = LegacyTimestamp.format(Date()).prefix(19).replacingOccurrences(of: ":", with: "")
        let root = URL(fileURLWithPath: dir).appendingPathComponent("run-\(stamp)").standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let legacyPath = root + "/worker_queue.db"
        try LegacyFixture.a.create(at: legacyPath)
        print("demo files: \(root)")

        var key = [UInt8](repeating: 0, count: 16)
        for i in key.indices { key[i] = .random(in: 0...255) }
        let apiKey = key.map { String(format: "%02x", $0) }.joined()
        let server = try EmbeddedTaskManager(
            databasePath: root + "/taskmanager.db", configuration: ServerConfiguration(apiKey: apiKey))
        let port = try await server.start()
        let baseURL = "http://127.0.0.1:\(port)/api"
        print("embedded TaskManager: \(baseURL)")

        let channel = TypeMapping(
            legacyType: "youtube_channel_scrape", name: "PrismQ.YouTube.Channel.Scrape", mode: .forward,
            paramSchema: [
                "type": "object", "properties": ["channel_url": ["type": "string"]], "required": ["channel_url"],
            ])
        let video = TypeMapping(
            legacyType: "youtube_video_scrape", name: "PrismQ.YouTube.Video.Scrape", mode: .off,
            paramSchema: ["type": "object", "properties": ["video_url": ["type": "string"]], "required": ["video_url"]])
        var config = BridgeConfiguration(
            file: root + "/bridge.conf", legacy: .init(database: legacyPath),
            embedded: .init(database: root + "/taskmanager.db", keyFile: root + "/taskmanager.key"))
        config.taskManager.url = baseURL
        config.taskManager.apiKey = apiKey
        config.bridge.metricsListen = nil
        config.bridge.pollIntervalSeconds = 0.02
        config.bridge.mirrorIntervalSeconds = 0.2
        config.types = [channel, video]

        // The composition `run` uses, on the demo's files.
        let bridgeClient = TaskManagerClient(
            configuration: try CLI.clientConfiguration(url: baseURL, key: apiKey, config: config))
        var logger = Logger(label: "demo.bridge")
        logger.logLevel = .error
        let queue = try CLI.composed { () throws(Composition.Failure) in
            try QueueInstance.open(config, client: bridgeClient, logger: logger, host: CLI.hostName, lock: false)
        }
        let store = queue.store, engine = queue.engine
        let engineTask = Task { try? await engine.run() }
        let workerClient = TaskManagerClient(configuration: try ClientConfiguration(baseURL: baseURL, apiKey: apiKey))

        func scalar(_ sql: String) throws -> Int {
            let q = try observerConnection(legacyPath)
            defer { try? q.close() }
            return try q.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
        }
        _ = try await Self.poll(timeout: .seconds(10)) { (try? scalar("SELECT COUNT(*) FROM _taskbridge_mode")) == 2 }

        let log = ExecutionLog()
        let counters = SharedCounter()
        let producing = Deadline(seconds: seconds)
        let running = DemoFlag()
        let cutoverAt = seconds / 2
        let interval = 1.0 / rate
        let isTTY = isatty(STDOUT_FILENO) == 1

        try await withThrowingTaskGroup(of: Void.self) { group in
            // Producers: PrismQ's statement forms, both timestamp styles; a few
            // duplicate params (collapse) and a few broken rows (quarantine).
            group.addTask {
                let producer = try LegacyProducer(path: legacyPath)
                var i = 0
                let start = ContinuousClock.now
                while !producing.passed {
                    let video = i % 2 == 1
                    var params =
                        video
                        ? #"{"video_url": "https://youtube.com/watch?v=v\#(i)"}"#
                        : #"{"channel_url": "https://youtube.com/@c\#(i)"}"#
                    if i % 50 == 8 { params = #"{"channel_url": "https://youtube.com/@popular"}"# }
                    if i % 97 == 14 && !clean { params = "{'channel_url': " }
                    try producer.insert(
                        type: video ? "youtube_video_scrape" : "youtube_channel_scrape", parameters: params,
                        priority: 1 + i % 10, style: LegacyProducer.Style.allCases[i % 3])
                    counters.add()
                    i += 1
                    let next = start + .milliseconds(Int(Double(i) * interval * 1000))
                    if next > ContinuousClock.now { try await Task.sleep(until: next) }
                }
                try producer.close()
            }
            // Legacy workers: BaseWorker's claim SQL, no task_type filter.
            for w in 0..<2 {
                group.addTask {
                    let worker = try LegacyWorker(
                        path: legacyPath, workerID: "legacy-worker-\(w)", strategy: w == 0 ? "LIFO" : "FIFO")
                    while running.on {
                        if let c = try worker.claim() {
                            await log.legacyExecuted(c.id)
                            try worker.complete(c.id)
                        } else {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    try worker.close()
                }
            }
            // TaskManager workers for every bridged type.
            group.addTask {
                var ids: [Int64] = []
                while running.on && ids.count < 2 {
                    ids = []
                    for name in [channel.name, video.name] {
                        if let t = try? await workerClient.getTaskType(name: name) { ids.append(t.id) }
                    }
                    if ids.count < 2 { try await Task.sleep(for: .milliseconds(100)) }
                }
                let workers = (0..<2).map {
                    APIWorker(client: workerClient, workerID: "api-worker-\($0)", typeIDs: ids)
                }
                while running.on {
                    var any = false
                    for w in workers where try await w.runOnce(log: log) != nil { any = true }
                    if !any { try await Task.sleep(for: .milliseconds(20)) }
                }
            }
            // Cutover mid-run, then a live status line.
            group.addTask {
                var cut = false
                let start = ContinuousClock.now
                while running.on {
                    let t = (ContinuousClock.now - start) / .seconds(1)
                    if !cut && t >= cutoverAt {
                        cut = true
                        try await store.setMode(
                            taskType: "youtube_video_scrape", mode: "forward", reason: "demo cutover",
                            host: CLI.hostName, actor: "demo")
                        print(
                            (isTTY ? "\r\u{1B}[K" : "")
                                + String(format: "t=%4.1fs  cutover youtube_video_scrape: off -> forward", t))
                    }
                    let s = try await store.statusReport()
                    let fwd = s.reduce(0) { $0 + $1.forwarded }, mir = s.reduce(0) { $0 + $1.mirrored }
                    let q = s.reduce(0) { $0 + $1.quarantined }, col = s.reduce(0) { $0 + $1.collapsed }
                    let legacyDone = await log.legacy.count
                    let line = String(
                        format:
                            """
                            t=%4.1fs  inserted=%d  legacy-executed=%d  forwarded=%d  mirrored=%d  quarantined=%d  \
                            collapsed=%d
                            """,
                        t, counters.value, legacyDone, fwd, mir, q, col)
                    if isTTY {
                        FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8))
                    } else if Int(t * 10) % 20 == 0 {
                        print(line)
                    }
                    try await Task.sleep(for: .milliseconds(isTTY ? 250 : 100))
                }
            }
            // Stop producers after --seconds, then drain: every row must end
            // terminal or quarantined.
            group.addTask {
                // However this ends, the workers stop: they loop until told.
                defer { running.off() }
                while !producing.passed { try await Task.sleep(for: .milliseconds(50)) }
                _ = try await Self.poll(timeout: .seconds(60), interval: .milliseconds(100)) {
                    let open = try? scalar(
                        "SELECT COUNT(*) FROM task_queue WHERE status NOT IN ('completed','failed','cancelled')")
                    let quarantined = try? scalar("SELECT COUNT(*) FROM _taskbridge_quarantine")
                    return open != nil && open == quarantined
                }
            }
            try await group.waitForAll()
        }
        if isTTY { print("") }
        engine.stop()
        await engineTask.value

        let total = try scalar("SELECT COUNT(*) FROM task_queue")
        let terminal = try scalar("SELECT COUNT(*) FROM task_queue WHERE status IN ('completed','failed')")
        let forwarded = try scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE tm_task_id IS NOT NULL")
        let mirrored = try scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'done'")
        let quarantined = try scalar("SELECT COUNT(*) FROM _taskbridge_quarantine")
        let collapsed = try scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE collapsed = 1")
        let legacyRows = Set(await log.legacy.keys)
        let bridged = Set(
            try {
                let q = try observerConnection(legacyPath)
                defer { try? q.close() }
                return try q.read { db in try Int64.fetchAll(db, sql: "SELECT legacy_id FROM _taskbridge_ledger") }
            }())
        let both = legacyRows.intersection(bridged).count
        let doubles = both + (await log.legacyDoubles) + (await log.apiDoubles)
        let lost = total - terminal - quarantined
        print(
            """

            summary
              rows inserted          \(total)
              executed by legacy     \(legacyRows.count)
              forwarded              \(forwarded)  (collapsed onto an existing task: \(collapsed))
              mirrored back          \(mirrored)
              quarantined            \(quarantined)  (see: taskbridge quarantine list --config \(root)/bridge.conf)
              not terminal (lost)    \(lost)
              double executions      \(doubles)
            """)
        try writeConfig(root: root, baseURLNote: baseURL)
        await bridgeClient.shutdown()
        await workerClient.shutdown()
        try? store.close()
        await server.stop()
        if doubles > 0 || lost > 0 {
            throw CLIError(
                code: .problems, message: "the rehearsal found \(doubles) double execution(s) and \(lost) lost row(s)")
        }
    }

    /// A bridge.conf next to the demo files so status/verify/quarantine can be
    /// pointed at them afterwards.
    func writeConfig(root: String, baseURLNote: String) throws {
        let text = """
            # Written by taskbridge demo. The demo's TaskManager ran at \(baseURLNote) and is stopped;
            # this file uses the embedded server on the demo's database for later commands.
            [legacy]
            database = "worker_queue.db"
            [taskmanager]
            url = "embedded"
            [embedded]
            listen = "127.0.0.1:8788"
            database = "taskmanager.db"
            [bridge]
            metrics_listen = "off"
            [types.youtube_channel_scrape]
            name = "PrismQ.YouTube.Channel.Scrape"
            mode = "forward"
            param_schema = { type = "object", properties = { channel_url = { type = "string" } }, required = \
            ["channel_url"] }
            [types.youtube_video_scrape]
            name = "PrismQ.YouTube.Video.Scrape"
            mode = "forward"
            param_schema = { type = "object", properties = { video_url = { type = "string" } }, required = \
            ["video_url"] }
            """
        try text.write(toFile: root + "/bridge.conf", atomically: true, encoding: .utf8)
    }
}

final class DemoFlag: Sendable {
    private let v = Mutex(true)
    var on: Bool { v.withLock { $0 } }
    func off() { v.withLock { $0 = false } }
}

import Synchronization

extension DemoCommand {
    /// Until `condition` holds or `timeout` passes: the demo waits on other
    /// tasks' work (the test harness has its own `eventually`).
    static func poll(
        timeout: Duration, interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: interval)
        }
        return try await condition()
    }
}
