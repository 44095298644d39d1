import Testing
@testable import TaskManagerModel

/// Vectors are computed with PHP's encoding rules (spec section 7); the first
/// one was observed on the real server.
@Suite struct DedupeKeyTests {
    @Test func specVector() throws {
        let params = try JSONParser.parse(#"{"v":"abc","n":5}"#)
        #expect(
            DedupeKey.compute(type: "test.a", params: params)
                == "ed0f58bd11d4fc850efd4aa7c3e236ade38fbb3e1b1f47540c365d0984be6a46")
    }

    @Test func typeIsTrimmedLikePHP() throws {
        let params = try JSONParser.parse(#"{"v":"abc","n":5}"#)
        #expect(
            DedupeKey.compute(type: "  test.a\n", params: params) == DedupeKey.compute(type: "test.a", params: params))
    }

    @Test func keyOrderChangesTheKey() throws {
        let a = try JSONParser.parse(#"{"v":"abc","n":5}"#)
        let b = try JSONParser.parse(#"{"n":5,"v":"abc"}"#)
        #expect(DedupeKey.compute(type: "t", params: a) != DedupeKey.compute(type: "t", params: b))
    }

    @Test func separatorPreventsCollisions() {
        // "A" + ":B" vs "A:" + "B" in the old ':' scheme; the NUL keeps them apart.
        #expect(DedupeKey.compute(type: "A", paramsJSON: ":B") != DedupeKey.compute(type: "A:", paramsJSON: "B"))
    }

    @Test func unicodeAndSlashVector() throws {
        // Python: sha256(("test.a"+"\0"+json.dumps(p, separators=(',',':'), ensure_ascii=False)).encode())
        let params = try JSONParser.parse(#"{"name":"Zoë/日本"}"#)
        #expect(
            DedupeKey.compute(type: "test.a", params: params)
                == "9f3b3ee7fa7815246f7b59fc63b5a49c78339ddc5d724436a6c96268b5254f25")
    }

    @Test func nestedEmptyObjectHashesAsEmptyArray() throws {
        let params = try JSONParser.parse(#"{"nested":{},"list":[]}"#)
        // Same key as {"nested":[],"list":[]}, which Python computes as below.
        #expect(
            DedupeKey.compute(type: "test.a", params: params)
                == "0252b73132f768d55757ddb85734bdb6364d28dc22654daef145cd6ebeac82e3")
    }

    @Test func sha256KnownAnswers() {
        #expect(SHA256Digest.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SHA256Digest.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256Digest.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256Digest.hex([UInt8](repeating: 0x61, count: 1_000))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test(arguments: [
        // (params as sent, PHP json_encode of json_decode(params, true))
        (#"{"url":"https://x.test/a/b"}"#, #"{"url":"https://x.test/a/b"}"#),
        (#"{"name":"Zoë \u00e9 日本"}"#, #"{"name":"Zoë é 日本"}"#),
        (#"{"nested":{},"list":[]}"#, #"{"nested":[],"list":[]}"#),
        (#"{"a":{"b":{}}}"#, #"{"a":{"b":[]}}"#),
        (
            #"{"f":5.0,"g":0.1,"h":1e25,"i":1.5e-7,"j":-0.0,"k":100.25}"#,
            #"{"f":5,"g":0.1,"h":1.0e+25,"i":1.5e-7,"j":-0,"k":100.25}"#
        ),
        (#"{"ls":"a\u2028b\u2029c"}"#, #"{"ls":"a\u2028b\u2029c"}"#),
        (#"{"ctl":"\u0001\t\n\"\\/"}"#, #"{"ctl":"\u0001\t\n\"\\/"}"#),
        (#"{"0":"a","1":"b"}"#, #"["a","b"]"#),
        (#"{"1":"a","0":"b"}"#, #"{"1":"a","0":"b"}"#),
        (#"{"big":12345678901234567890}"#, #"{"big":1.2345678901234567e+19}"#),
        (#"{"a":1,"b":2,"a":3}"#, #"{"a":3,"b":2}"#),
    ])
    func phpEncoding(input: String, expected: String) throws {
        #expect(PHPJSON.encode(try JSONParser.parse(input)) == expected)
    }

}

@Suite struct JSONParserTests {
    @Test func keepsIntegersAndFloatsApart() throws {
        #expect(try JSONParser.parse("5") == .int(5))
        #expect(try JSONParser.parse("5.0") == .double(5))
        #expect(try JSONParser.parse("-0") == .int(0))
    }

    @Test(arguments: [
        "", "   ", "{", "[1,]", "{\"a\":}", "tru", "\"\\ud800\"", "01", "1.", "{'a':1}", "{\"a\":1}x", "\"a\u{0001}\"",
    ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test func rejectsDeepNesting() {
        let text = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
    }
}

@Suite struct SchemaValidatorTests {
    let schema = try! JSONParser.parse(
        #"""
        {"type":"object","properties":{"v":{"type":"string","minLength":2,"pattern":"^[a-z]+$"},\#
        "n":{"type":"integer","minimum":1,"maximum":10},"e":{"type":"string","enum":["x","y"]}},"required":["v"]}
        """#)

    @Test func specExampleMessages() throws {
        let errors = JSONSchemaValidator().validate(try JSONParser.parse(#"{"v":"A1","n":11,"e":"z"}"#), schema: schema)
        #expect(
            errors == [
                "String does not match pattern at v", "Number too large at n: maximum is 10",
                "Value at e must be one of: x, y",
            ])
    }

    @Test func requiredTreatsNullAsMissingWithDotPath() throws {
        let errors = JSONSchemaValidator().validate(try JSONParser.parse(#"{"v":null,"n":5}"#), schema: schema)
        #expect(errors == ["Missing required property: .v"])
    }

    @Test func phpTypes() throws {
        let v = JSONSchemaValidator()
        #expect(v.validate(.int(5), schema: ["type": "number"]) == ["Type mismatch at : expected number, got integer"])
        #expect(
            v.validate(.double(5), schema: ["type": "integer"]) == ["Type mismatch at : expected integer, got number"])
        #expect(v.validate(.string("123"), schema: ["type": "integer"]).count == 1)
        #expect(v.validate(.bool(true), schema: ["type": "integer"]).count == 1)
        #expect(v.validate(.object([]), schema: ["type": "array"]).isEmpty)
        #expect(v.validate(try JSONParser.parse(#"{"a":1}"#), schema: ["type": "array"]).count == 1)
    }

    @Test func lengthsCountBytes() {
        #expect(
            JSONSchemaValidator().validate(.string("ééé"), schema: ["type": "string", "maxLength": 5])
                == ["String too long at : maximum length is 5"])
    }

    @Test func itemPathsAreGarbledLikePHP() throws {
        let schema: JSONValue = [
            "type": "object", "properties": ["tags": ["type": "array", "items": ["type": "string"]]],
        ]
        let errors = JSONSchemaValidator().validate(try JSONParser.parse(#"{"tags":["ok",5,"x",7,9]}"#), schema: schema)
        // "$path[$index]" picks character `index` of "tags"; past its end it is empty.
        #expect(
            errors == [
                "Type mismatch at a: expected string, got integer", "Type mismatch at s: expected string, got integer",
                "Type mismatch at : expected string, got integer",
            ])
    }

    @Test func additionalPropertiesAndCounts() throws {
        let schema: JSONValue = [
            "type": "object", "additionalProperties": false,
            "properties": ["a": ["type": "array", "minItems": 2, "maxItems": 3]],
        ]
        let errors = JSONSchemaValidator().validate(try JSONParser.parse(#"{"a":[1],"b":2}"#), schema: schema)
        #expect(
            errors == ["Array too short at a: minimum items is 2", "Additional property not allowed: b"]
                || errors == ["Additional property not allowed: b", "Array too short at a: minimum items is 2"])
    }

    @Test func enumIsStrict() {
        let v = JSONSchemaValidator()
        #expect(v.validate(.string("X"), schema: ["enum": ["x"]]) == ["Value at  must be one of: x"])
        #expect(v.validate(.string(" x"), schema: ["enum": ["x"]]).count == 1)
        #expect(v.validate(.string("1"), schema: ["enum": [1]]).count == 1)
        #expect(v.validate(.string("x"), schema: ["enum": ["x"]]).isEmpty)
    }

    @Test func invalidRegexIsReported() {
        #expect(
            JSONSchemaValidator().validate(.string("a"), schema: ["type": "string", "pattern": "(["]) == [
                "Invalid regex pattern in schema at "
            ])
    }

    @Test func hugeIntegerAboveMaximum() {
        #expect(
            JSONSchemaValidator().validate(
                .int(Int64.max), schema: ["type": "integer", "maximum": .int(Int64.max - 1)]
            ).count == 1)
    }

    @Test func ignoresUnsupportedKeywords() {
        #expect(
            JSONSchemaValidator().validate(
                .string("x"), schema: ["type": "string", "format": "uri", "oneOf": [["type": "integer"]]]
            ).isEmpty)
    }
}
