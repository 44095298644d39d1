import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("Bad input: answered with the spec's error, nothing stored, server keeps serving", .heavy)
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var body: RawBody
        var status: Int
        var error: String
        var details: [String]? = nil
        var testDescription: String { name }
    }

    static let invalidJSON = "Invalid JSON in request body"

    static let cases: [Case] = [
        Case(name: "not JSON", body: .text("type=test.a&params=1"), status: 400, error: invalidJSON),
        Case(name: "empty body", body: .bytes([]), status: 400, error: invalidJSON),
        Case(name: "whitespace only", body: .text(" \n\t "), status: 400, error: invalidJSON),
        Case(name: "truncated", body: .text(#"{"type":"test.a","params":{"v":1}"#), status: 400, error: invalidJSON),
        Case(
            name: "trailing garbage", body: .text(#"{"type":"test.a","params":{"v":1}}x"#), status: 400,
            error: invalidJSON),
        Case(
            name: "single quotes", body: .text(#"{'type':'test.a','params':{'v':1}}"#), status: 400,
            error: invalidJSON),
        Case(
            name: "trailing comma", body: .text(#"{"type":"test.a","params":{"v":1},}"#), status: 400,
            error: invalidJSON),
        Case(
            name: "invalid UTF-8 in a string",
            body: .bytes(Array(#"{"type":"test.a","params":{"v":""#.utf8) + [0xFF, 0xFE, 0x80] + Array(#""}}"#.utf8)),
            status: 400, error: invalidJSON),
        Case(
            name: "overlong UTF-8 encoding",
            body: .bytes(Array(#"{"type":"test.a","params":{"v":""#.utf8) + [0xC0, 0xAF] + Array(#""}}"#.utf8)),
            status: 400, error: invalidJSON),
        Case(
            name: "lone surrogate bytes",
            body: .bytes(Array(#"{"type":"test.a","params":{"v":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}}"#.utf8)),
            status: 400, error: invalidJSON),
        Case(
            name: "nesting deeper than 512",
            body: .text(
                #"{"type":"test.a","params":{"v":"# + String(repeating: "[", count: 600)
                    + String(repeating: "]", count: 600) + "}}"),
            status: 400, error: invalidJSON),
        Case(
            name: "JSON null", body: .text("null"), status: 400, error: "Validation failed",
            details: ["Task type is required", "Task parameters are required"]),
        Case(
            name: "JSON array", body: .text(#"["test.a",{"v":1}]"#), status: 400, error: "Validation failed",
            details: ["Task type is required", "Task parameters are required"]),
        Case(
            name: "params {}", body: .text(#"{"type":"test.a","params":{}}"#), status: 400, error: "Validation failed",
            details: ["Field 'params' must be of type object"]),
        Case(
            name: "params as string", body: .text(#"{"type":"test.a","params":"{\"v\":1}"}"#), status: 400,
            error: "Validation failed", details: ["Field 'params' must be of type object"]),
        Case(
            name: "type as number", body: .text(#"{"type":1,"params":{"v":1}}"#), status: 400,
            error: "Validation failed",
            details: ["Field 'type' must be of type string"]),
        Case(
            name: "type as bool", body: .text(#"{"type":true,"params":{"v":1}}"#), status: 400,
            error: "Validation failed",
            details: ["Field 'type' must be of type string"]),
        Case(
            name: "unknown type", body: .text(#"{"type":"test.unknown","params":{"v":1}}"#), status: 404,
            error: "Task type not found"),
        Case(
            name: "params failing the schema", body: .text(#"{"type":"test.a","params":{"v":"x"}}"#), status: 400,
            error: "Parameter validation failed: Type mismatch at v: expected integer, got string"),
        // PHP would decode 1e400 to INF and store 0; refused instead (issue 7, item 2).
        Case(
            name: "number out of range", body: .text(#"{"type":"test.a","params":{"v":1e400}}"#), status: 400,
            error: "Invalid JSON in request body: number out of range"),
        // SQLite's text binding would cut the name at the NUL and find "test.a".
        Case(
            name: "NUL in the type name", body: .text(#"{"type":"test.a\u0000evil","params":{"v":1}}"#), status: 400,
            error: "Invalid type: contains a NUL character"),
        Case(
            name: "huge body",
            body: .bytes(
                Array(#"{"type":"test.a","params":{"v":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 1_100_000)
                    + Array(#""}}"#.utf8)),
            status: 413, error: "Request Too Large"),
    ]

    @Test(arguments: cases)
    func createRejectsAndStoresNothing(_ c: Case) async throws {
        try await TaskManagerHarness.with { h in
            _ = try await h.client.registerTaskType(
                name: "test.a", version: "1", paramSchema: ["type": "object", "properties": ["v": ["type": "integer"]]])
            let r = try await h.raw(.POST, "/api/tasks", body: c.body)
            #expect(r.status == c.status)
            #expect(r.error == c.error)
            #expect(r.details == c.details)
            if c.status != 413 { #expect(r.header("Content-Type") == "application/json") }

            #expect(try await h.taskCount() == 0)
            #expect(try await h.raw(.GET, "/api/health").status == 200)
            let ok = try await h.client.createTask(type: "test.a", params: ["v": 1])
            #expect(!ok.deduplicated && ok.status == "pending")
        }
    }

    /// Identifiers with a NUL are refused on every route that takes one; free
    /// text keeps its NUL (a worker's error is stored and answered whole).
    @Test func nulInIdentifiersIsRefused() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let register = try await h.raw(
                .POST, "/api/task-types/register",
                body: .text(#"{"name":"test.b\u0000x","version":"1","param_schema":{"type":"object"}}"#))
            #expect(register.status == 400 && register.error == "Invalid name: contains a NUL character")
            let id = try await h.client.createTask(type: "test.a", params: ["a": 1]).id
            let claim = try await h.raw(
                .POST, "/api/tasks/claim", body: .text(#"{"worker_id":"w\u0000x","task_type_id":\#(typeID)}"#))
            #expect(claim.status == 400 && claim.error == "Invalid worker_id: contains a NUL character")
            #expect(try await h.client.getTask(id: id).status == .pending, "a refused claim took the task")
            _ = try await h.client.claimTask(workerID: "w", taskTypeID: typeID)
            let error = String(decoding: Array("boom".utf8) + [0] + Array("tail".utf8), as: UTF8.self)
            _ = try await h.client.completeTask(id: id, workerID: "w", success: false, error: error)
            #expect(try await h.client.getTask(id: id).errorMessage == error)
        }
    }

    @Test func everyPostRouteRejectsBrokenJSON() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let id = try await h.client.createTask(type: "test.a", params: ["a": 1]).id
            _ = try await h.client.claimTask(workerID: "w", taskTypeID: typeID)
            for path in [
                "/api/task-types/register", "/api/tasks/claim", "/api/tasks/\(id)/complete",
                "/api/tasks/\(id)/progress",
            ] {
                for body in [RawBody.bytes([]), .text("{"), .bytes([0x7B, 0xFF, 0x7D])] {
                    let r = try await h.raw(.POST, path, body: body)
                    #expect(r.status == 400 && r.error == Self.invalidJSON, "\(path)")
                }
            }
            let task = try await h.client.getTask(id: id)
            #expect(task.status == .claimed && task.progress == 0)
            #expect(try await h.client.listTaskTypes().count == 1)
        }
    }

    @Test func serverSurvivesAStreamOfGarbage() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    group.addTask {
                        let bytes: [UInt8] = (0..<(i * 37 % 500)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ i) }
                        let r = try await h.raw(.POST, "/api/tasks", body: .bytes(bytes))
                        #expect(r.status == 400)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await h.taskCount() == 0)
            _ = try await h.client.createTask(type: "test.a", params: ["after": "garbage"])
            #expect(try await h.taskCount() == 1)
        }
    }
}
