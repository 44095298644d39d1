import TaskManagerModel
import Testing

@Suite struct WireAndLogTests {
    /// The wire form keeps whole floats as floats (PHP's validator refuses 5
    /// for "number"); the stored form and the dedupe key are PHP's (spec 17.3).
    @Test func wholeFloatsKeepTheirFractionOnTheWireOnly() throws {
        let params: JSONValue = ["f": .double(5), "n": ["g": .double(1e25), "i": 5], "s": "5.0"]
        #expect(PHPJSON.encodeWire(params) == #"{"f":5.0,"n":{"g":1.0e+25,"i":5},"s":"5.0"}"#)
        #expect(PHPJSON.encode(params) == #"{"f":5,"n":{"g":1.0e+25,"i":5},"s":"5.0"}"#)
        // What the server parses from the wire re-encodes to PHP's form.
        #expect(PHPJSON.encode(try JSONParser.parse(PHPJSON.encodeWire(params))) == PHPJSON.encode(params))
        #expect(
            DedupeKey.compute(type: "f.t", params: try JSONParser.parse(#"{"f":5.0}"#))
                == DedupeKey.compute(type: "f.t", paramsJSON: #"{"f":5}"#))
    }

    @Test func controlCharactersAndInvalidUTF8AreEscaped() {
        #expect(LogSafe.escape("plain text é") == "plain text é")
        #expect(LogSafe.escape("a\u{0}b\nc\u{1b}[31m") == "a\\u{0}b\\u{a}c\\u{1b}[31m")
        #expect(LogSafe.escape(bytes: [0x61, 0xFF, 0x00, 0x62]) == "a\\xff\\u{0}b")
        #expect(LogSafe.escape(bytes: Array("ok é".utf8)) == "ok é")
    }
}
