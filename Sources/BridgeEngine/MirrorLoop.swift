import AsyncAlgorithms
import Foundation
import LegacyQueue
import Synchronization
import TaskManagerClient
import TaskManagerModel

/// Mirror: TaskManager status, result and error back into legacy rows. Under
/// faults it still makes progress: results are recorded as they arrive in
/// small batches, one type's failed list does not stop another's, and
/// mirroring backs off on its own (a 429 for a send does not pause it).
extension BridgeEngine {
    func mirrorLoop(_ ctx: RunContext) async throws {
        var backoff = MirrorPlanner.Backoff()
        let beat = AsyncTimerSequence(
            interval: .milliseconds(Int64(config.bridge.mirrorIntervalSeconds * 1000)), clock: .continuous)
        // A first pass at start: a restarted bridge gets results through at once.
        for await _ in chain([()].async, merge(ctx.mirrorWake.stream, beat.map { _ in () })) {
            if isStopping { return }
            let now = Date().timeIntervalSince1970
            if now < backoff.until { continue }
            await attempt("mirror") {
                let r = try await mirrorCycle()
                backoff.record(
                    successes: r.successes, failures: r.failures, retryAfter: r.retryAfter,
                    now: Date().timeIntervalSince1970)
            }
        }
    }

    struct MirrorCycleResult: Sendable {
        var successes = 0
        var failures = 0
        var retryAfter: Double?
        var mirrored = 0
    }

    /// Records collected so far go to the ledger at this size, or when this
    /// much time has passed since the last write.
    static let mirrorBatch = 16
    static let mirrorFlushSeconds = 0.25
    /// Individual GETs per mirror cycle, at most.
    static let fetchBudget = 256
    /// Pending tasks checked at each end of the queue per cycle.
    static let edgeChecks = 32
    /// Mirror GETs in flight at once: enough that a bridge restarted every
    /// second still gets results through a slow network, few enough that
    /// mirroring leaves most of the client's connections to sends.
    static let mirrorConcurrency = 16

    enum MirrorPiece: Sendable {
        case listing(MirrorPlanner.Listing, successes: Int, failures: [TaskManagerError])
        case observed(Result<Ledger.Observation, TaskManagerError>?)
    }

    /// One pass. The GETs of what the ledger says is likely to have changed
    /// start at once, beside the list calls of every type (all in parallel:
    /// a slow list holds back nothing); the lists then add the claimed rows
    /// (written without a GET) and the finished ones. Results are written as
    /// they arrive.
    @discardableResult
    func mirrorCycle() async throws -> MirrorCycleResult {
        var result = MirrorCycleResult()
        // From the ledger, not the config: a type rolled back and removed
        // from bridge.conf still has tasks to mirror.
        let names = try await store.inFlightTaskManagerTypes()
        guard !names.isEmpty else { return result }
        let now = Date().timeIntervalSince1970
        let candidates = try await store.mirrorCandidates(now: now, edge: Self.edgeChecks, budget: Self.fetchBudget)
        var queue = MirrorPlanner.plan(
            listing: .init(), listed: [], candidates: candidates, now: now, budget: Self.fetchBudget
        ).fetch
        var queued = Set(queue.map(\.legacyID))
        var pending: [Ledger.Observation] = []
        var lastFlush = Date().timeIntervalSince1970
        try await withThrowingTaskGroup(of: MirrorPiece.self) { group in
            group.addTask { await self.listAll(names) }
            var next = 0
            var inFlight = 0
            func launch() {
                while inFlight < Self.mirrorConcurrency && next < queue.count {
                    let e = queue[next]
                    next += 1
                    inFlight += 1
                    group.addTask { .observed(await self.observe(e, now: now)) }
                }
            }
            launch()
            for try await piece in group {
                switch piece {
                case .listing(let listing, let successes, let failures):
                    result.successes += successes
                    for e in failures { note(e, into: &result) }
                    let listed = try await store.inFlight(
                        taskIDs: Array(listing.claimed.keys) + Array(listing.finished))
                    let plan = MirrorPlanner.plan(
                        listing: listing, listed: listed, candidates: candidates, now: now, budget: Self.fetchBudget)
                    result.mirrored += try await writeMirror(plan.observations)
                    for e in plan.fetch where queued.insert(e.legacyID).inserted && queue.count < 2 * Self.fetchBudget {
                        queue.append(e)
                    }
                case .observed(let outcome):
                    inFlight -= 1
                    switch outcome {
                    case .success(let o)?:
                        result.successes += 1
                        pending.append(o)
                    case .failure(let e)?:
                        note(e, into: &result)
                    case nil:
                        break
                    }
                }
                launch()
                let t = Date().timeIntervalSince1970
                if pending.count >= Self.mirrorBatch || (!pending.isEmpty && t - lastFlush >= Self.mirrorFlushSeconds) {
                    result.mirrored += try await writeMirror(pending)
                    pending.removeAll(keepingCapacity: true)
                    lastFlush = t
                }
            }
        }
        result.mirrored += try await writeMirror(pending)
        return result
    }

    /// The claimed and the newest finished tasks of every type, all lists at
    /// once; a type whose lists fail is simply absent (its rows fall back to
    /// individual GETs).
    func listAll(_ names: [String]) async -> MirrorPiece {
        await withTaskGroup(of: (String, Result<[TaskInfo], TaskManagerError>, Bool).self) { group in
            for name in names {
                for statuses in [["claimed"], ["completed"], ["failed"]] {
                    group.addTask {
                        do throws(TaskManagerError) {
                            let limit = statuses == ["claimed"] ? 1000 : 200
                            let tasks = try await self.client.listTasks(statuses: statuses, type: name, limit: limit)
                            return (name, .success(tasks), statuses == ["claimed"])
                        } catch {
                            return (name, .failure(error), statuses == ["claimed"])
                        }
                    }
                }
            }
            var listing = MirrorPlanner.Listing()
            var successes = 0
            var failures: [TaskManagerError] = []
            for await (name, outcome, claimed) in group {
                switch outcome {
                case .success(let tasks):
                    successes += 1
                    for t in tasks {
                        if claimed { listing.claimed[t.id] = t.attempts } else { listing.finished.insert(t.id) }
                    }
                case .failure(let e):
                    failures.append(e)
                    await noteAPIError(e, context: "list tasks of \(name)")
                }
            }
            return .listing(listing, successes: successes, failures: failures)
        }
    }

    private func note(_ error: TaskManagerError, into result: inout MirrorCycleResult) {
        result.failures += 1
        if case .rateLimited(let after, _) = error { result.retryAfter = max(result.retryAfter ?? 0, after ?? 1) }
    }

    private func writeMirror(_ observations: [Ledger.Observation]) async throws -> Int {
        guard !observations.isEmpty else { return 0 }
        let r = try await store.recordMirror(observations)
        BridgeMetrics.mirrored.increment(queueLabel, by: r.terminal)
        if r.archived > 0 {
            logger.notice(
                "ledger entries archived: their rows are other rows now", metadata: ["count": "\(r.archived)"])
        }
        return r.terminal
    }

    /// One GET; nil when the entry has no task id.
    func observe(_ e: LedgerEntry, now: Double) async -> Result<Ledger.Observation, TaskManagerError>? {
        guard let id = e.tmTaskID else { return nil }
        do {
            let t = try await client.getTask(id: id)
            return .success(
                .init(
                    legacyID: e.legacyID, tmStatus: t.rawStatus, attempts: t.attempts, result: t.result,
                    error: t.errorMessage, nextCheckAt: now + MirrorPlanner.recheckInterval(e, now: now)))
        } catch {
            await noteAPIError(error, context: "get task \(id)")
            return .failure(error)
        }
    }
}
