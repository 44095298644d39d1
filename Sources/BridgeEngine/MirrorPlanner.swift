import Foundation
import LegacyQueue
import TaskManagerModel

/// What the mirror should write and fetch next, against an API without a
/// change feed. Pure: `MirrorPlannerTests` covers it without a socket.
public enum MirrorPlanner {
    /// What the list calls of one cycle said (types whose lists failed are
    /// simply absent: their rows fall back to individual GETs).
    public struct Listing: Sendable, Equatable {
        /// Claimed tasks and their attempt counts.
        public var claimed: [Int64: Int64] = [:]
        /// Ids among the newest completed and failed tasks.
        public var finished: Set<Int64> = []
        public init() {}
    }

    public struct Plan: Sendable, Equatable {
        /// Written without a GET: tasks the claimed list shows.
        public var observations: [Ledger.Observation] = []
        /// Fetched individually, most likely to have changed first.
        public var fetch: [LedgerEntry] = []
    }

    /// In order of how likely the task has changed: it appears in a list now;
    /// it was claimed or known finished before; it sits at an end of the queue
    /// (FIFO workers take the oldest, LIFO the newest); its re-check is due.
    public static func plan(
        listing: Listing, listed: [LedgerEntry], candidates: LegacyQueueStore.MirrorCandidates, now: Double,
        budget: Int
    ) -> Plan {
        var plan = Plan()
        var seen = Set<Int64>()
        func consider(_ e: LedgerEntry) {
            guard let id = e.tmTaskID, seen.insert(e.legacyID).inserted else { return }
            if let attempts = listing.claimed[id] {
                if e.tmStatus != "claimed" || e.nextAttemptAt <= now {
                    plan.observations.append(
                        .init(
                            legacyID: e.legacyID, tmStatus: "claimed", attempts: attempts, result: nil,
                            error: nil, nextCheckAt: now + recheckInterval(e, now: now)))
                }
            } else if plan.fetch.count < budget {
                plan.fetch.append(e)
            }
        }
        for e in listed { consider(e) }
        for e in candidates.moving { consider(e) }
        for e in candidates.edges { consider(e) }
        for e in candidates.due { consider(e) }
        return plan
    }

    /// A task is looked at again after a quarter of its age, 2 to 60 s.
    public static func recheckInterval(_ e: LedgerEntry, now: Double) -> Double {
        let age = LegacyTimestamp.parse(e.claimedAt).map { now - $0.timeIntervalSince1970 } ?? 60
        return min(60, max(2, age / 4))
    }

    /// The mirror's own back-off: failures slow mirroring only (sends have
    /// theirs); a 429 waits its Retry-After; any success ends it.
    public struct Backoff: Sendable, Equatable {
        public var failures = 0
        public var until: Double = 0

        public init() {}

        public mutating func record(successes: Int, failures f: Int, retryAfter: Double?, now: Double) {
            if let retryAfter {
                until = now + retryAfter
                failures += 1
                return
            }
            if successes > 0 || f == 0 {
                failures = 0
                until = 0
                return
            }
            failures += 1
            // At most 4 s: mirroring resumes within that long of the API answering again.
            until = now + min(4, 0.25 * Double(1 << min(failures, 6)))
        }
    }
}
