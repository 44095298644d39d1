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
        for await _ in merge(ctx.mirrorWake.stream, beat.map { _ in () }) {
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
    /// Mirror GETs in flight at once: mirroring must not crowd out the sends
    /// that share the client's connections.
    static let mirrorConcurrency = 8

    /// One pass: the lists of each type in flight, then individual GETs of
    /// what the planner picks, written as they arrive.
    @discardableResult
    func mirrorCycle() async throws -> MirrorCycleResult {
        var result = MirrorCycleResult()
        // From the ledger, not the config: a type rolled back and removed
        // from bridge.conf still has tasks to mirror.
        let names = try await store.inFlightTaskManagerTypes()
        guard !names.isEmpty else { return result }
        let now = Date().timeIntervalSince1970
        var listing = MirrorPlanner.Listing()
        for name in names {
            do {
                for t in try await client.listTasks(statuses: ["claimed"], type: name, limit: 1000) {
                    listing.claimed[t.id] = t.attempts
                }
                for t in try await client.listTasks(statuses: ["completed", "failed"], type: name, limit: 200) {
                    listing.finished.insert(t.id)
                }
                result.successes += 1
            } catch {
                // This type's rows fall back to individual GETs; the others go on.
                note(error, into: &result)
                await noteAPIError(error, context: "list tasks of \(name)")
            }
        }
        let listed = try await store.inFlight(taskIDs: Array(listing.claimed.keys) + Array(listing.finished))
        let candidates = try await store.mirrorCandidates(now: now, edge: Self.edgeChecks, budget: Self.fetchBudget)
        let plan = MirrorPlanner.plan(
            listing: listing, listed: listed, candidates: candidates, now: now, budget: Self.fetchBudget)
        result.mirrored += try await writeMirror(plan.observations)
        var pending: [Ledger.Observation] = []
        var lastFlush = Date().timeIntervalSince1970
        let fetch = plan.fetch
        try await withThrowingTaskGroup(of: Result<Ledger.Observation, TaskManagerError>?.self) { group in
            var next = 0
            func launch() {
                guard next < fetch.count else { return }
                let e = fetch[next]
                next += 1
                group.addTask { await self.observe(e, now: now) }
            }
            for _ in 0..<min(Self.mirrorConcurrency, fetch.count) { launch() }
            for try await outcome in group {
                switch outcome {
                case .success(let o)?:
                    result.successes += 1
                    pending.append(o)
                case .failure(let e)?:
                    note(e, into: &result)
                case nil:
                    break
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

    private func note(_ error: TaskManagerError, into result: inout MirrorCycleResult) {
        result.failures += 1
        if case .rateLimited(let after, _) = error { result.retryAfter = max(result.retryAfter ?? 0, after ?? 1) }
    }

    private func writeMirror(_ observations: [Ledger.Observation]) async throws -> Int {
        guard !observations.isEmpty else { return 0 }
        let r = try await store.recordMirror(observations)
        BridgeMetrics.mirrored.increment(by: r.terminal)
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
