import CutoverStages

/// The percentage canary of `forward` (issue 10): which new rows of a type the
/// bridge takes and which stay `queued` for legacy workers. The decision is
/// SQL, written once here and used by every place that claims a row for the
/// bridge (the insert trigger, the re-queue trigger, the backlog read and its
/// claim) and by verify, so the same row always lands on the same side,
/// whichever path sees it and across restarts.
///
/// A row's bucket is a number in 0..<100 taken from the row itself:
/// - `id` (per-row dedupe): `(id * 37) % 100`. 37 is prime to 100, so every
///   hundred consecutive ids hold exactly P rows of the bridge's share,
///   spread out rather than in a run.
/// - `params` (collapse dedupe): a weighted sum of the code points of the
///   first and last 16 characters of `parameters` and its length, mod 100.
///   Identical parameter texts get one bucket, so rows that would collapse
///   onto one TaskManager task land on one side. (SQLite has no hash
///   function a producer's connection could call, and a trigger can hold no
///   recursive query; parameters that differ only beyond their first and
///   last 16 characters, with the same length, share a bucket.)
///
/// The bridge takes the row when its bucket is below the type's `percent`.
public enum Canary {
    public enum ShareBy: String, Sendable, CaseIterable {
        case id
        case params
    }

    static let frontWeights = [3, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61]
    static let backWeights = [67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139]

    /// The bucket of the row `r` (`NEW` in a trigger, the table name in a
    /// query), by the mode row `m`'s `share_by`.
    static func bucketSQL(_ r: String, _ m: String) -> String {
        let p = "CAST(\(r).parameters AS TEXT)"
        var terms = ["length(\(p)) * 7"]
        for (i, w) in frontWeights.enumerated() {
            terms.append("COALESCE(unicode(substr(\(p), \(i + 1), 1)), 0) * \(w)")
        }
        for (i, w) in backWeights.enumerated() {
            terms.append("COALESCE(unicode(substr(\(p), -\(i + 1), 1)), 0) * \(w)")
        }
        return "(CASE \(m).share_by WHEN 'params' THEN ((" + terms.joined(separator: " + ") + ") % 100) "
            + "ELSE ((\(r).id * 37) % 100) END)"
    }

    /// True when the bridge takes row `r` for itself: its type's mode claims
    /// rows (`forward`, `retired`) and the row falls in the bridge's share.
    public static func bridgeTakesSQL(_ r: String) -> String { inShareSQL(r, modes: BridgeMode.sqlList(\.claimsRows)) }

    /// True when row `r` of a type in shadow falls in the sampled share: the
    /// same bucket as the canary, so a row is sampled or not whichever pass
    /// sees it and across restarts.
    public static func shadowSampledSQL(_ r: String) -> String {
        inShareSQL(r, modes: BridgeMode.sqlList(\.makesShadowCopies))
    }

    static func inShareSQL(_ r: String, modes: String) -> String {
        """
        EXISTS (SELECT 1 FROM _taskbridge_mode m WHERE m.task_type = \(r).task_type \
        AND m.mode IN \(modes) AND (m.percent >= 100 OR \(bucketSQL(r, "m")) < m.percent))
        """
    }
}

/// A type's mode as the database holds it.
public struct ModeState: Sendable, Equatable {
    public var mode: String
    /// The share of `forward` (canary) or `shadow` (sample), 1...100 (100
    /// for every other mode).
    public var percent: Int
    public var shareBy: Canary.ShareBy
    /// `forward 25%` for a canary, `shadow 10%` for a sample, the mode otherwise.
    public var label: String { BridgeMode(rawValue: mode)?.label(percent: percent) ?? mode }

    public init(mode: String, percent: Int = 100, shareBy: Canary.ShareBy = .id) {
        self.mode = mode
        self.percent = percent
        self.shareBy = shareBy
    }
}
