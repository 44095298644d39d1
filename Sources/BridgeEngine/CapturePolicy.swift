import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// Pure decisions about one captured legacy row: forward it (and exactly
/// what to send), quarantine it (and why), or record a dry-run verdict.
/// No I/O, so every bad input of PRODUCT.md section 6 is tested without
/// sockets.
public struct CapturePolicy: Sendable {
    public let mappings: [String: TypeMapping]
    public let bridgeID: String
    public let maxBodyBytes: Int
    /// `[taskmanager] max_params_bytes`: the largest PHP encoding of params the
    /// API stores (the real server's TEXT column answers a permanent 500 above).
    public let maxParamsBytes: Int

    public init(mappings: [TypeMapping], bridgeID: String, maxBodyBytes: Int = 1_048_576, maxParamsBytes: Int = 65_535)
    {
        self.mappings = Dictionary(mappings.map { ($0.legacyType, $0) }, uniquingKeysWith: { a, _ in a })
        self.bridgeID = bridgeID
        self.maxBodyBytes = maxBodyBytes
        self.maxParamsBytes = maxParamsBytes
    }

    public init(config: BridgeConfiguration) {
        self.init(mappings: config.types, bridgeID: config.bridge.id, maxParamsBytes: config.taskManager.maxParamsBytes)
    }

    public enum Validation: Sendable, Equatable {
        /// `paramsJSON` is the wire form (whole floats keep `.0`, so the server
        /// validates what was validated here); `dedupeKey` hashes PHP's encoding.
        case ok(
            params: JSONValue, paramsJSON: String, dedupeKey: String, priority: Int64, dueAt: Double, notes: [String])
        case reject(code: String, detail: String)
    }

    /// What would be sent for this row under its mapping.
    /// Under `per-row`, params carry the legacy id under `marker` and the
    /// generation's `origin` under `originMarker`: together they name the row
    /// across every queue, host and generation of its table (invariant 10).
    /// Without an origin (objects not yet installed) only the id is added.
    /// A shadow copy (`shadow: true`) also carries `ShadowLedger.marker` =
    /// origin:id, validated like any other field: TaskManager's dedupe then
    /// never confuses the copy with the row's real task, and a re-sent copy
    /// finds its own task.
    public func validate(_ row: LegacyRow, mapping: TypeMapping, origin: String?, shadow: Bool = false)
        -> Validation
    {
        var params: JSONValue
        var notes: [String] = []
        switch LegacyParameters.decode(row.parameters, maxBodyBytes: maxBodyBytes) {
        case .failure(let p): return .reject(code: p.code, detail: p.description)
        case .success(let (v, source)):
            params = v
            if source == .pythonLiteral { notes.append("parameters read as a Python literal") }
        }
        if mapping.dedupe == .perRow {
            guard case .object(var members) = params else {
                return .reject(code: "params_not_object", detail: "parameters is not an object")
            }
            for field in [mapping.marker, mapping.originMarker] where members.contains(where: { $0.key == field }) {
                return .reject(
                    code: "marker_conflict",
                    detail:
                        """
                        parameters already has the per-row marker field \"\(field)\"; choose another marker \
                        in bridge.conf
                        """
                )
            }
            members.append(JSONMember(mapping.marker, .int(row.id)))
            if let origin { members.append(JSONMember(mapping.originMarker, .string(origin))) }
            params = .object(members)
        }
        if shadow {
            guard case .object(var members) = params else {
                return .reject(code: "params_not_object", detail: "parameters is not an object")
            }
            guard !members.contains(where: { $0.key == ShadowLedger.marker }) else {
                return .reject(
                    code: "marker_conflict", detail: "parameters already has the field \"\(ShadowLedger.marker)\"")
            }
            members.append(JSONMember(ShadowLedger.marker, .string("\(origin ?? "-"):\(row.id)")))
            params = .object(members)
        }
        let errors = JSONSchemaValidator().validate(params, schema: mapping.paramSchema)
        if !errors.isEmpty {
            return .reject(
                code: "param_schema", detail: "Parameter validation failed: " + errors.joined(separator: ", "))
        }
        var dueAt = 0.0
        if let ra = row.runAfter, !ra.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let d = LegacyTimestamp.parse(ra) else {
                return .reject(
                    code: "run_after_unparseable",
                    detail: "run_after_utc \"\(ra.prefix(64))\" is not a timestamp in any legacy format")
            }
            dueAt = d.timeIntervalSince1970
        }
        let priority: Int64
        if let p = row.priority {
            priority = p
            if !(1...10).contains(p) { notes.append("priority \(p) is outside 1..10; sent as is") }
        } else {
            priority = 5
            notes.append("priority is NULL; sent as the legacy default 5")
        }
        let stored = PHPJSON.encode(params)
        let wire = PHPJSON.encodeWire(params)
        if stored.utf8.count > maxParamsBytes {
            return .reject(
                code: "params_too_large",
                detail:
                    """
                    parameters encode to \(stored.utf8.count) bytes, above [taskmanager] max_params_bytes = \
                    \(maxParamsBytes)
                    """
            )
        }
        // The body is {"type":..,"params":..}; the type name is small, so the
        // params encoding decides whether the request fits.
        if wire.utf8.count + 256 > maxBodyBytes {
            let p = LegacyParameters.Problem.tooLarge(bytes: wire.utf8.count + 256, limit: maxBodyBytes)
            return .reject(code: p.code, detail: p.description)
        }
        return .ok(
            params: params, paramsJSON: wire, dedupeKey: DedupeKey.compute(type: mapping.name, paramsJSON: stored),
            priority: priority, dueAt: dueAt, notes: notes)
    }

    /// A row the insert trigger (or a backlog claim) gave the bridge is
    /// forwarded whatever mode the engine last read: the row's owner is the
    /// truth. Dry-run verdicts need the mode, since nothing was claimed.
    /// For a queued row of a forward type, before the backlog claim: what
    /// the bridge would record once it holds the row.
    public func decideClaimed(_ row: LegacyRow, origin: String?) -> CaptureDecision {
        var held = row
        held.claimedBy = bridgeID
        held.status = LegacyStatus.claimed.rawValue
        return decide(held, mode: .forward, origin: origin)
    }

    public func decide(_ row: LegacyRow, mode: BridgeMode?, origin: String?) -> CaptureDecision {
        // `running` too: an orphan a legacy tool moved on is still the bridge's (issue 8, item 3).
        let ours = row.claimedBy == bridgeID && [.claimed, .running].contains(LegacyStatus(text: row.status))
        guard let mapping = mappings[row.taskType] else {
            return ours
                ? .quarantine(
                    taskType: row.taskType, code: "unknown_type",
                    detail: "task_type \"\(row.taskType)\" has no mapping in bridge.conf") : .ignore
        }
        if ours {
            switch validate(row, mapping: mapping, origin: origin) {
            case .ok(_, let json, let key, let priority, let dueAt, _):
                return .intent(tmType: mapping.name, paramsJSON: json, dedupeKey: key, priority: priority, dueAt: dueAt)
            case .reject(let code, let detail):
                return .quarantine(taskType: row.taskType, code: code, detail: detail)
            }
        }
        if mode?.makesShadowCopies == true {
            // The store keeps it only for a row inserted in this mode and in
            // the sample; a row whose params TaskManager would refuse gets no
            // copy (dry-run is the stage that reports those).
            if case .ok(_, let json, _, let priority, _, _) = validate(row, mapping: mapping, origin: origin, shadow: true)
            {
                return .shadow(tmType: mapping.name, paramsJSON: json, priority: priority)
            }
            return .ignore
        }
        if mode == .dryRun, LegacyStatus(text: row.status) == .queued {
            switch validate(row, mapping: mapping, origin: origin) {
            case .ok(_, _, _, _, _, let notes):
                return .dryRun(verdict: "would-forward", reason: notes.isEmpty ? nil : notes.joined(separator: "; "))
            case .reject(let code, let detail): return .dryRun(verdict: "would-reject", reason: "\(code): \(detail)")
            }
        }
        return .ignore
    }
}

/// What the engine decided for a row it captured.
public enum CaptureDecision: Sendable, Equatable {
    /// Forward: write-ahead intent with exactly the params that will be sent.
    case intent(tmType: String, paramsJSON: String, dedupeKey: String, priority: Int64?, dueAt: Double)
    case quarantine(taskType: String, code: String, detail: String)
    case dryRun(verdict: String, reason: String?)
    /// A shadow copy to create (if the row was inserted in shadow and is sampled).
    case shadow(tmType: String, paramsJSON: String, priority: Int64?)
    /// Not the bridge's business (type off or unmapped, row not claimed by it).
    case ignore

    /// The ledger transition that records it.
    public var input: LegacyQueueStore.CaptureInput {
        switch self {
        case .intent(let tmType, let json, let key, let priority, let dueAt):
            return .intent(
                Ledger.Intent(tmType: tmType, paramsJSON: json, dedupeKey: key, priority: priority, dueAt: dueAt))
        case .quarantine(let t, let c, let d): return .quarantine(taskType: t, code: c, detail: d)
        case .dryRun(let v, let r): return .verdict(verdict: v, reason: r)
        case .shadow(let t, let json, let priority): return .shadow(tmType: t, paramsJSON: json, priority: priority)
        case .ignore: return .ignore
        }
    }
}
