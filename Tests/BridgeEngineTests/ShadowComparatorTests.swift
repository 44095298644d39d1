import BridgeConfig
import BridgeEngine
import LegacyQueue
import TaskManagerModel
import Testing

/// The shadow comparison and its gate without a socket (issue 16).
@Suite struct ShadowComparatorTests {
    let comparator = ShadowComparator(ignore: ["fetched_at", "items[*].view_count"])

    func compare(
        _ legacy: String?, _ legacyResult: String?, _ tm: TaskStatus?, _ tmResult: JSONValue?, hasResult: Bool = true
    ) -> ShadowLedger.Comparison? {
        comparator.compare(
            legacyStatus: legacy, legacyResult: legacyResult, hasLegacyResult: hasResult, tmStatus: tm,
            tmResult: tmResult)
    }

    @Test func keyOrderNumberSpellingAndIgnoredPathsDoNotCount() throws {
        let legacy = #"{"score": 1, "fetched_at": "2026-12-05T10:00:00", "items": [{"id": 7, "view_count": 3}]}"#
        let tm: JSONValue = [
            "items": [["view_count": 99, "id": 7.0]], "fetched_at": "2026-12-05T10:00:09", "score": 1.0,
        ]
        let c = try #require(compare("completed", legacy, .completed, tm))
        #expect(c.outcome == .matched)
        #expect(c.fieldsJSON == nil)
    }

    @Test func aDifferentValueNamesItsFieldWithBothValues() throws {
        let c = try #require(compare("completed", #"{"score": 1, "tags": ["a"]}"#, .completed, ["score": 2, "tags": ["a", "b"]]))
        #expect(c.outcome == .value)
        let fields = comparator.diff(
            try JSONParser.parse(#"{"score": 1, "tags": ["a"]}"#), ["score": 2, "tags": ["a", "b"]])
        #expect(fields.map(\.path) == ["score", "tags[*]"])
        #expect(fields[0].legacy == "1" && fields[0].taskManager == "2")
        // The second tag exists on one side only.
        #expect(fields[1].legacy == nil && fields[1].taskManager == #""b""#)
    }

    @Test func outcomesPairUp() throws {
        #expect(compare("failed", nil, .failed, nil)?.outcome == .matched)
        #expect(compare("failed", nil, .completed, ["x": 1])?.outcome == .legacyFailedOnly)
        #expect(compare("completed", "{}", .failed, nil)?.outcome == .taskManagerFailedOnly)
        #expect(compare("cancelled", nil, .completed, ["x": 1])?.outcome == .outcome)
        // Uppercase legacy statuses (proposal-style tables) are read the same way.
        #expect(compare("COMPLETED", #"{"x": 1}"#, .completed, ["x": 1])?.outcome == .matched)
    }

    @Test func nothingIsDecidedUntilBothSidesFinished() {
        #expect(compare("queued", nil, .completed, ["x": 1]) == nil)
        #expect(compare("running", nil, .completed, ["x": 1]) == nil)
        #expect(compare("completed", "{}", .pending, nil) == nil)
        #expect(compare("completed", "{}", .claimed, nil) == nil)
        #expect(compare("completed", "{}", nil, nil) == nil)
    }

    @Test func anEmptyLegacyResultEqualsAnEmptyOne() {
        // PrismQ writes `json.dumps(data) if data else None`.
        #expect(compare("completed", nil, .completed, nil)?.outcome == .matched)
        #expect(compare("completed", nil, .completed, [:])?.outcome == .matched)
        #expect(compare("completed", nil, .completed, ["x": 1])?.outcome == .value)
        // A queue without a result column compares outcomes only.
        #expect(compare("completed", nil, .completed, ["x": 1], hasResult: false)?.outcome == .matched)
    }

    @Test func aPythonLiteralResultIsReadAsAValue() {
        #expect(compare("completed", "{'ok': True, 'n': 2}", .completed, ["ok": true, "n": 2])?.outcome == .matched)
    }

    @Test func wildcardsMatchAnyKeyOrIndexAtTheirLevelOnly() {
        let c = ShadowComparator(ignore: ["meta.*", "rows[*]"])
        #expect(c.diff(["meta": ["a": 1, "b": 2], "rows": [1, 2]], ["meta": ["a": 5], "rows": [3]]).isEmpty)
        // An ignored field takes what it holds with it; `meta.*` does not cover `meta` itself.
        #expect(c.diff(["meta": ["a": ["z": 1]]], ["meta": ["a": ["z": 2]]]).isEmpty)
        #expect(c.diff(["meta": 1], ["meta": 2]).map(\.path) == ["meta"])
        #expect(c.diff(["other": ["a": 1]], ["other": ["a": 2]]).map(\.path) == ["other.a"])
    }

    @Test func theGateReadsTheLatestComparisons() {
        let gate = ShadowGate(minCompared: 100, minMatch: 0.99)
        #expect(gate.passes(recentCompared: 100, recentMatched: 99))
        #expect(!gate.passes(recentCompared: 100, recentMatched: 98))
        #expect(!gate.passes(recentCompared: 99, recentMatched: 99))
        #expect(!ShadowGate(minCompared: 1, minMatch: 0.5).passes(recentCompared: 0, recentMatched: 0))
        #expect(
            gate.describe(recentCompared: 400, recentMatched: 300).contains("300 of the last 400 comparisons matched"))
    }
}

/// The modes in one type: what derives from it (issue 16, "Shape").
@Suite struct BridgeModeTests {
    @Test func theSQLListsFollowTheModes() {
        for m in BridgeMode.allCases { #expect(BridgeMode.checkSQL.contains("'\(m.rawValue)'")) }
        #expect(BridgeMode.sqlList(\.claimsRows) == "('forward','retired')")
        #expect(!BridgeMode.sqlList(\.logsChanges).contains("'off'"))
        #expect(BridgeMode.sqlList(\.logsChanges).contains("'shadow'"))
    }

    @Test func sharesAndGates() {
        #expect(BridgeMode.allCases.filter(\.takesPercent) == [.shadow, .forward])
        #expect(BridgeMode.shadow.label(percent: 10) == "shadow 10%")
        #expect(BridgeMode.forward.label(percent: 100) == "forward")
        #expect(BridgeMode.shadow.needsShadowGate(to: .forward))
        #expect(!BridgeMode.shadow.needsShadowGate(to: .off))
        #expect(!BridgeMode.dryRun.needsShadowGate(to: .forward))
        #expect(BridgeMode.stages == [.off, .dryRun, .shadow, .forward, .retired])
    }

    @Test func shadowConfigIsReadAndChecked() throws {
        #expect(ConfigLoader.parseDuration("90s") == 90)
        #expect(ConfigLoader.parseDuration("30m") == 1_800)
        #expect(ConfigLoader.parseDuration("1h") == 3_600)
        #expect(ConfigLoader.parseDuration("soon") == nil)
    }
}
