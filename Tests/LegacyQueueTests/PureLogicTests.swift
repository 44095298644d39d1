import Foundation
import LegacyQueue
import TaskManagerModel
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-29 13:28:38", 1_795_958_918.0),
        ("2026-11-29T13:28:38", 1_795_958_918.0),
        ("2026-11-29T13:28:38.250000", 1_795_958_918.25),
        ("2026-11-29T13:28:38.250000+00:00", 1_795_958_918.25),
        ("2026-11-29T13:28:38Z", 1_795_958_918.0),
        ("2026-11-29T14:28:38+01:00", 1_795_958_918.0),
        ("2026-11-29T13:28:38.123+00:00", 1_795_958_918.123),
    ])
    func parsesEveryLegacyFormatAsUTC(text: String, epoch: Double) throws {
        let d = try #require(LegacyTimestamp.parse(text))
        #expect(abs(d.timeIntervalSince1970 - epoch) < 0.0005)
    }

    @Test(arguments: [
        "", "garbage", "2026-13-01 00:00:00", "2026-02-30T00:00:00", "2026-11-29T25:00:00", "2026-11-29 13:28:38 +01",
        "1795958918",
    ])
    func rejectsGarbage(_ text: String) {
        #expect(LegacyTimestamp.parse(text) == nil)
    }

    @Test func formatsLikePythonIsoformat() {
        let s = LegacyTimestamp.format(Date(timeIntervalSince1970: 1_795_958_918.25))
        #expect(s == "2026-11-29T13:28:38.250000+00:00")
        #expect(LegacyTimestamp.parse(s)?.timeIntervalSince1970 == 1_795_958_918.25)
    }
}

@Suite struct PythonLiteralTests {
    @Test func reprOfADict() throws {
        let v = try PythonLiteral.parse(
            """
            {'channel_url': 'https://x/@a', 'top_n': 50, 'ok': True, 'none': None, 'f': -1.5, 't': (1, 2), 'l': ['a', \
            \"b\"]}
            """
        )
        #expect(
            v == [
                "channel_url": "https://x/@a", "top_n": 50, "ok": true, "none": nil, "f": -1.5, "t": [1, 2],
                "l": ["a", "b"],
            ])
    }

    @Test func escapesAndConcatenation() throws {
        #expect(
            try PythonLiteral.parse(#"{'a': 'it\'s \u00e9\n', 'b': 'x' 'y', 'c': r'\d+'}"#) == [
                "a": "it's é\n", "b": "xy", "c": #"\d+"#,
            ])
    }

    @Test(arguments: [
        "__import__('os').system('rm -rf /')", "{'a': open('x')}", "{1, 2}", "b'bytes'", "{'a': 1j}", "{'a': x}",
        "{'a': 1", "",
    ])
    func refusesAnythingThatIsNotData(_ text: String) {
        #expect(throws: PythonLiteral.ParseError.self) { try PythonLiteral.parse(text) }
    }

    @Test func bigIntegersBecomeFloats() throws {
        #expect(try PythonLiteral.parse("{'n': 123456789012345678901234}") == ["n": .double(1.2345678901234568e23)])
    }
}

@Suite struct ParametersTests {
    @Test func decodesJSONThenPythonLiteral() throws {
        guard case .success(let (v, source)) = LegacyParameters.decode(Array(#"{"a": 1}"#.utf8)) else {
            Issue.record(); return
        }
        #expect(v == ["a": 1] && source == .json)
        guard case .success(let (p, psource)) = LegacyParameters.decode(Array("{'a': 1}".utf8)) else {
            Issue.record(); return
        }
        #expect(p == ["a": 1] && psource == .pythonLiteral)
    }

    @Test func problems() {
        func code(_ bytes: [UInt8]?) -> String? {
            if case .failure(let p) = LegacyParameters.decode(bytes, maxBodyBytes: 1000) { return p.code }
            return nil
        }
        #expect(code(nil) == "params_null")
        #expect(code(Array("  ".utf8)) == "params_empty")
        #expect(code([0x7B, 0xC3, 0x28, 0x7D]) == "params_invalid_utf8")
        #expect(code(Array("[1]".utf8)) == "params_not_object")
        #expect(code(Array("{}".utf8)) == "params_empty_object")
        #expect(code(Array("{nope".utf8)) == "params_unparseable")
        #expect(code(Array(#"{"a": "\#(String(repeating: "x", count: 2000))"}"#.utf8)) == "params_too_large")
    }
}

@Suite struct SchemaDetectionTests {
    func cols(_ names: [String]) -> [LegacySchema.Column] {
        names.map { LegacySchema.Column(name: $0, type: "TEXT", notNull: false, primaryKey: $0 == "id") }
    }
    let full = [
        "id", "task_type", "parameters", "priority", "run_after_utc", "status", "claimed_by", "claimed_at",
        "retry_count",
        "max_retries", "result_data", "error_message", "created_at", "updated_at", "completed_at",
    ]

    @Test func variants() throws {
        #expect(
            try LegacySchema.detect(
                table: "task_queue", columns: cols(full),
                createSQL: "CREATE TABLE x (... CHECK (priority BETWEEN 1 AND 10))"
            ).variant == .a)
        #expect(
            try LegacySchema.detect(table: "task_queue", columns: cols(full), createSQL: "CREATE TABLE x (...)").variant
                == .aMin)
        #expect(
            try LegacySchema.detect(
                table: "task_queue", columns: cols(full.filter { $0 != "run_after_utc" }), createSQL: nil
            ).variant == .aNoRunAfter)
    }

    @Test func refusals() {
        #expect(throws: LegacySchema.DetectionError.variantB("task_queue")) {
            try LegacySchema.detect(
                table: "task_queue", columns: cols(["id", "type", "payload", "status", "priority"]), createSQL: nil)
        }
        #expect(throws: LegacySchema.DetectionError.missingTable("task_queue")) {
            try LegacySchema.detect(table: "task_queue", columns: [], createSQL: nil)
        }
        #expect(throws: LegacySchema.DetectionError.unsupported(table: "task_queue", missing: ["claimed_by"])) {
            try LegacySchema.detect(
                table: "task_queue", columns: cols(full.filter { $0 != "claimed_by" }), createSQL: nil)
        }
    }

    @Test func statusMapping() {
        #expect(LegacyStatus(text: "QUEUED") == .queued)
        #expect(LegacyStatus.mirroring(taskManagerStatus: "pending") == .claimed)
        #expect(LegacyStatus.mirroring(taskManagerStatus: "pending (retry)") == .claimed)
        #expect(LegacyStatus.mirroring(taskManagerStatus: "claimed") == .running)
        #expect(LegacyStatus.mirroring(taskManagerStatus: "completed") == .completed)
        #expect(LegacyStatus.mirroring(taskManagerStatus: "failed") == .failed)
        #expect(LegacyStatus.cancelled.taskManagerEquivalent == "failed")
        #expect(LegacyStatus.running.taskManagerEquivalent == "claimed")
    }
}
