import LegacyQueue
import TaskManagerModel
import Testing

/// Valid legacy parameters that were refused or changed (issue 7, item 2).
@Suite struct LiteralEdgeTests {
    @Test func namesStartingWithStringPrefixLettersAreNames() throws {
        #expect(
            try PythonLiteral.parse("{'channel_url': 'u', 'enabled': False}") == ["channel_url": "u", "enabled": false])
        #expect(try PythonLiteral.parse("[False, True, None]") == [false, true, .null])
        #expect(try PythonLiteral.parse("{'a': r'\\d', 'b': u'x', 'c': R'y'}") == ["a": "\\d", "b": "x", "c": "y"])
    }

    @Test func bytesAndFStringsAreStillRefused() {
        for text in ["{'a': b'x'}", "{'a': f'x'}", "{'a': F\"x\"}", "{'a': rb'x'}", "{'a': Br'x'}", "{'a': fr'x'}"] {
            #expect(throws: PythonLiteral.ParseError.self, "\(text)") { try PythonLiteral.parse(text) }
        }
        // A name that merely starts with f/b is a name, and names are never evaluated.
        #expect(throws: PythonLiteral.ParseError.self) { try PythonLiteral.parse("{'a': foo}") }
    }

    @Test func numbersOutOfRangeAreRefusedWithTheirOwnReason() throws {
        for text in [
            #"{"n": 1e400}"#, #"{"n": -1e400}"#, "{'n': 1e400}", "{'n': " + String(repeating: "9", count: 400) + "}",
        ] {
            guard case .failure(let p) = LegacyParameters.decode(Array(text.utf8)) else {
                Issue.record("\(text) was accepted")
                continue
            }
            #expect(p.code == "params_number_out_of_range", "\(text): \(p)")
        }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("1e400") }
        // Large but finite stays a float, as PHP decodes it.
        #expect(try JSONParser.parse("1e300") == .double(1e300))
    }
}
