import BridgeConfig
import Foundation
import LegacyQueue

/// The cutover use case, one set of rules for the CLI and the page: a
/// mapping first (unless forced), `--percent` only for a mode with a share
/// (forward's canary, shadow's sample), forward from shadow only through the
/// shadow gate and retirement only through the retire-check gate (unless
/// forced with a reason, audited as `cutover-forced`), and every change
/// audited with who asked.
public enum Cutover {
    public struct Request: Sendable {
        public var taskType: String
        public var mode: BridgeMode
        public var percent: Int?
        public var reason: String?
        public var force = false
        public var actor: String
        public var host: String

        public init(
            taskType: String, mode: BridgeMode, percent: Int? = nil, reason: String?, force: Bool = false,
            actor: String, host: String
        ) {
            self.taskType = taskType
            self.mode = mode
            self.percent = percent
            self.reason = reason
            self.force = force
            self.actor = actor
            self.host = host
        }
    }

    /// Why a cutover was not made: `usage` (the request itself), `conflict`
    /// (the file or the gate says no), with the gate's report when it ran.
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable { case usage, conflict }
        public var kind: Kind
        public var description: String
        public var gateReport: String?
    }

    public struct Outcome: Sendable {
        public var from: String
        public var to: String
        /// Said after a step back from forward: what happens to rows already sent.
        public var note: String?
    }

    /// Applies the request. `retireCheck` runs the gate when a type is retired
    /// without `force`.
    public static func perform(
        _ r: Request, config: BridgeConfiguration, store: LegacyQueueStore,
        retireCheck: () async throws -> RetireCheck.Result
    ) async throws -> Outcome {
        if let p = r.percent {
            guard r.mode.takesPercent else {
                throw Refusal(
                    kind: .usage,
                    description: "--percent applies to "
                        + BridgeMode.allCases.filter(\.takesPercent).map(\.rawValue).joined(separator: " and ") + " only")
            }
            guard (1...100).contains(p) else {
                throw Refusal(
                    kind: .usage, description: "--percent must be 1 to 100 (0 is `cutover \(r.taskType) off`)")
            }
        }
        let mapping = config.mapping(forLegacyType: r.taskType)
        if mapping == nil && r.mode != .off && !r.force {
            throw Refusal(
                kind: .conflict,
                description:
                    "task_type \"\(r.taskType)\" has no [types.\(r.taskType)] mapping in bridge.conf; add one first")
        }
        if r.force, r.reason?.isEmpty ?? true, r.mode.claimsRows {
            throw Refusal(kind: .usage, description: "--force needs --reason (it is audited)")
        }
        let current = try await store.modeStates()[r.taskType].flatMap { BridgeMode(rawValue: $0.mode) } ?? .off
        var forced = false
        if current.needsShadowGate(to: r.mode), let mapping {
            let gate = ShadowGate(minCompared: mapping.shadowMinCompared, minMatch: mapping.shadowMinMatch)
            let f = try await store.shadowFigures(
                types: [r.taskType], window: [r.taskType: mapping.shadowMinCompared], examples: 0
            ).first
            let (n, m) = (f?.recentCompared ?? 0, f?.recentMatched ?? 0)
            if !gate.passes(recentCompared: n, recentMatched: m) {
                guard r.force else {
                    throw Refusal(
                        kind: .conflict,
                        description: "\(r.taskType) is in shadow and does not pass the shadow gate: "
                            + gate.describe(recentCompared: n, recentMatched: m)
                            + "; see `taskbridge shadow report --type \(r.taskType)`, or use --force --reason TEXT")
                }
                forced = true
            }
        }
        if r.mode == .retired {
            if r.force {
                guard let reason = r.reason, !reason.isEmpty else {
                    throw Refusal(kind: .usage, description: "--force needs --reason to retire without the gate")
                }
                forced = true
            } else {
                let result = try await retireCheck()
                guard result.passes else {
                    throw Refusal(
                        kind: .conflict,
                        description: "\(r.taskType) does not pass retire-check; fix the failing checks or use "
                            + "--force --reason TEXT",
                        gateReport: result.text)
                }
            }
        }
        if case .notInstalled = try await store.objectsHealth() { try await store.install() }
        let share = r.percent ?? 100
        let old = try await store.setMode(
            taskType: r.taskType, mode: r.mode.rawValue, percent: share, shareBy: mapping?.canaryShare,
            reason: r.reason, host: r.host, actor: r.actor, action: forced ? "cutover-forced" : "cutover")
        let to = ModeState(mode: r.mode.rawValue, percent: share).label
        var note: String?
        if old?.mode == BridgeMode.forward.rawValue && (r.mode == .off || share < (old?.percent ?? 100)) {
            note =
                "rows already forwarded stay with TaskManager and keep being mirrored; "
                + (r.mode == .off ? "new rows go to legacy workers" : "new rows outside the share stay queued")
        }
        return Outcome(from: old?.label ?? "off", to: to, note: note)
    }
}
