import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import Logging
import Synchronization
import TaskManagerClient

/// Keeps one queue of a fleet running: opens it, runs its engine until the
/// process stops, and when its file is missing, locked by another bridge or
/// broken, says so once and tries again every `retryInterval` without
/// stopping the other queues (issue 14, item 2).
public final class QueueSupervisor: Sendable {
    public let config: BridgeConfiguration
    let client: TaskManagerClient
    let logger: Logger
    let host: String
    let retryInterval: Duration
    let state = Mutex<(instance: QueueInstance?, problem: String?, stopping: Bool)>((nil, nil, false))

    public init(
        config: BridgeConfiguration, client: TaskManagerClient, logger: Logger, host: String,
        retryInterval: Duration = .seconds(5)
    ) {
        self.config = config
        self.client = client
        var l = logger
        l[metadataKey: "queue"] = "\(config.queue)"
        self.logger = l
        self.host = host
        self.retryInterval = retryInterval
    }

    public var name: String { config.queue }
    /// The running queue (nil while it cannot be opened).
    public var instance: QueueInstance? { state.withLock { $0.instance } }
    /// Why the queue is not running, when it is not.
    public var problem: String? { state.withLock { $0.problem } }

    /// Opens the queue once, for `run` to fail fast when a single-queue
    /// process cannot open its only queue (the old behaviour scripts know).
    public func openNow() throws(Composition.Failure) {
        let q = try QueueInstance.open(config, client: client, logger: logger, host: host, lock: true)
        state.withLock { $0.instance = q }
    }

    /// Runs until `stop()`: the engine, reopened after a failure. With
    /// `failFast` (a process with one queue), an engine that fails ends it
    /// with the error instead, as `run` always did.
    public func run(failFast: Bool = false) async throws {
        while !state.withLock({ $0.stopping }) && !Task.isCancelled {
            var queue = instance
            if queue == nil {
                do {
                    queue = try QueueInstance.open(config, client: client, logger: logger, host: host, lock: true)
                    state.withLock {
                        $0.instance = queue
                        if $0.problem != nil { $0.problem = nil }
                    }
                    logger.info("queue opened", metadata: ["database": "\(config.legacy.database)"])
                } catch {
                    report(error.description)
                    try? await Task.sleep(for: retryInterval)
                    continue
                }
            }
            guard let queue else { continue }
            if state.withLock({ $0.stopping }) { queue.engine.stop() }
            do {
                try await queue.engine.run()
                if state.withLock({ $0.stopping }) { break }
            } catch {
                if failFast {
                    state.withLock { $0.instance = nil }
                    queue.close()
                    throw error
                }
                report("\(error)")
            }
            // The engine ended without a stop: start over on a fresh open.
            state.withLock { $0.instance = nil }
            queue.close()
            try? await Task.sleep(for: retryInterval)
        }
        if let q = state.withLock({ s -> QueueInstance? in
            defer { s.instance = nil }
            return s.instance
        }) {
            q.close()
        }
    }

    public func stop() {
        let q = state.withLock { s -> QueueInstance? in
            s.stopping = true
            return s.instance
        }
        q?.engine.stop()
    }

    /// Once per distinct problem: a queue retried every few seconds must not
    /// flood the log.
    func report(_ problem: String) {
        let isNew = state.withLock { s -> Bool in
            defer { s.problem = problem }
            return s.problem != problem
        }
        if isNew {
            logger.error(
                "queue is not running; retrying",
                metadata: ["problem": "\(problem)", "retry_every": "\(retryInterval)"])
        }
    }
}
