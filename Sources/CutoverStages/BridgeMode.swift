/// Per-type cutover stage (PRODUCT.md section 2), the one home of the modes.
///
/// Everything that spells the modes derives from this type: the CHECK of
/// `_taskbridge_mode` (`checkSQL`), the trigger predicates (`sqlList` of
/// `logsChanges` and `claimsRows`), the canary and shadow shares, the cutover
/// gates, the status model and the page's stages. A new stage is one case here
/// and the properties it answers. Guarded by `BridgeModeTests`.
public enum BridgeMode: String, Sendable, CaseIterable, Codable {
    case off
    case dryRun = "dry-run"
    /// Legacy workers execute every row as in `off`; a sampled share is also
    /// executed by TaskManager workers as a shadow copy, and the two results
    /// are compared. The legacy result stays authoritative.
    case shadow
    case forward
    case retired
    /// TaskManager producers, legacy workers: the bridge claims the type's
    /// tasks, inserts them as queued rows and completes them from the rows.
    case reverse

    /// The runbook's order of stages (the page draws them as a path); modes
    /// not in it are other directions.
    public static let stages: [BridgeMode] = [.off, .dryRun, .shadow, .forward, .retired]

    /// The bridge takes new rows for itself (the insert trigger claims them).
    public var claimsRows: Bool { self == .forward || self == .retired }

    /// The triggers log the type's inserts, status changes and deletions.
    public var logsChanges: Bool { self != .off }

    /// A share of rows applies (`--percent`): the canary of forward, the
    /// sample of shadow. Every other mode holds 100.
    public var takesPercent: Bool { self == .forward || self == .shadow }

    /// Rows inserted in this mode get a shadow copy in TaskManager (sampled).
    public var makesShadowCopies: Bool { self == .shadow }

    /// Stepping from this mode to `to` needs the shadow gate: forward (at any
    /// percent) from shadow rests on measured agreement.
    public func needsShadowGate(to: BridgeMode) -> Bool { self == .shadow && to.claimsRows }

    /// `forward 25%`, `shadow 10%`; the mode itself at 100.
    public func label(percent: Int) -> String {
        takesPercent && percent < 100 ? "\(rawValue) \(percent)%" : rawValue
    }

    /// A SQL list of the modes that satisfy `include`: `('forward','retired')`.
    public static func sqlList(_ include: (BridgeMode) -> Bool) -> String {
        "(" + allCases.filter(include).map { "'\($0.rawValue)'" }.joined(separator: ",") + ")"
    }

    /// The CHECK clause of `_taskbridge_mode.mode`.
    public static var checkSQL: String { "CHECK (mode IN \(sqlList { _ in true }))" }
}
