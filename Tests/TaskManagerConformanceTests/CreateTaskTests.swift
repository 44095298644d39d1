import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("POST /tasks: validation and dedupe (spec 5.5, 7, 8)", .heavy)
struct CreateTaskTests {
    static let exampleSchema: JSONValue = [
        "type": "object",
        "properties": [
            "v": ["type": "string", "minLength": 2, "pattern": "^[a-z]+$"],
            "n": ["type": "integer", "minimum": 1, "maximum": 10],
            "e": ["type": "string", "enum": ["x", "y"]],
        ],
        "required": ["v"],
    ]

    @Test func createAnswersWithIdKeyAndMessage() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let r = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["v": "abc", "n": 5]])
            #expect(r.status == 200 && r.json?["message"] == "Success")
            let data = try #require(r.data)
            if case .int = data["id"] {
            } else {
                Issue.record("id must be an integer, got \(String(describing: data["id"]))")
            }
            #expect(data["type"] == "test.a" && data["status"] == "pending")
            #expect(data["dedupe_key"] == "ed0f58bd11d4fc850efd4aa7c3e236ade38fbb3e1b1f47540c365d0984be6a46")
            #expect(data["message"] == "Task created successfully")
            #expect(data["deduplicated"] == nil)
            #expect(Set(keys(data)) == ["id", "type", "status", "priority", "dedupe_key", "message"])
        }
    }

    @Test func priorityIsStoredAndEchoed() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let high = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["p": 1], "priority": 10])
            #expect(high.data?["priority"] == 10)
            let plain = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["p": 2]])
            #expect(plain.data?["priority"] == 0)
            let id = try #require(high.data?["id"]?.intValue)
            #expect(try await h.client.getTask(id: id).priority == 10)
            let viaClient = try await h.client.createTask(type: "test.a", params: ["p": 3], priority: 7)
            #expect(try await h.client.getTask(id: viaClient.id).priority == 7)
        }
    }

    @Test(arguments: [
        (JSONValue.string("7"), Int64(7)), (.double(2.9), 2), (.string("high"), 0), (.null, 0), (.bool(true), 1),
        (.int(-3), -3),
    ])
    func anyPriorityThePHPServerAcceptsIsAccepted(_ raw: JSONValue, _ stored: Int64) async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let r = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["p": 1], "priority": raw])
            #expect(r.status == 200)
            #expect(r.data?["priority"] == .int(stored))
            let missing = try await h.rawJSON(.POST, "/api/tasks", ["params": ["p": 1], "priority": raw])
            #expect(missing.details == ["Task type is required"])
        }
    }

    @Test func requestValidationDetails() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let cases: [(JSONValue, [String])] = [
                (["params": ["a": 1]], ["Task type is required"]),
                (["type": "", "params": ["a": 1]], ["Task type is required"]),
                (["type": nil, "params": ["a": 1]], ["Task type is required"]),
                (["type": "test.a"], ["Task parameters are required"]),
                (["type": "test.a", "params": nil], ["Task parameters are required"]),
                ([:], ["Task type is required", "Task parameters are required"]),
                (["type": "test.a", "params": [:]], ["Field 'params' must be of type object"]),
                (["type": "test.a", "params": []], ["Field 'params' must be of type object"]),
                (["type": "test.a", "params": [1, 2]], ["Field 'params' must be of type object"]),
                (["type": "test.a", "params": "v=1"], ["Field 'params' must be of type object"]),
                (["type": "test.a", "params": 5], ["Field 'params' must be of type object"]),
                (["type": 5, "params": ["a": 1]], ["Field 'type' must be of type string"]),
                (
                    ["type": ["test.a"], "params": [:]],
                    ["Field 'type' must be of type string", "Field 'params' must be of type object"]
                ),
            ]
            for (body, details) in cases {
                let r = try await h.rawJSON(.POST, "/api/tasks", body)
                #expect(r.status == 400, "\(body)")
                #expect(r.error == "Validation failed", "\(body)")
                #expect(r.details == details, "\(body)")
            }
            await expectValidation("Validation failed", details: ["Field 'params' must be of type object"]) {
                try await h.client.createTask(type: "test.a", params: [:])
            }
            await expectValidation("Validation failed", details: ["Task type is required"]) {
                try await h.client.createTask(type: "", params: ["a": 1])
            }
            #expect(try await h.taskCount() == 0)
        }
    }

    @Test func unknownTypeIs404() async throws {
        try await TaskManagerHarness.with { h in
            let r = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.missing", "params": ["a": 1]])
            #expect(r.status == 404 && r.error == "Task type not found")
            await expectError(.notFound("Task type not found")) {
                try await h.client.createTask(type: "test.missing", params: ["a": 1])
            }
            #expect(try await h.taskCount() == 0)
        }
    }

    @Test func parameterValidationJoinsSchemaErrors() async throws {
        try await TaskManagerHarness.with { h in
            _ = try await h.client.registerTaskType(name: "test.a", version: "1", paramSchema: Self.exampleSchema)
            let r = try await h.rawJSON(
                .POST, "/api/tasks", ["type": "test.a", "params": ["v": "ABC", "n": 11, "e": "z"]])
            #expect(r.status == 400)
            #expect(
                r.error
                    == "Parameter validation failed: String does not match pattern at v, Number too large at n: "
                    + "maximum is 10, Value at e must be one of: x, y"
            )
            #expect(keys(r.json) == ["success", "error", "timestamp"])

            let missing = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": ["n": 5]])
            #expect(missing.error == "Parameter validation failed: Missing required property: .v")
            let wrongType = try await h.rawJSON(
                .POST, "/api/tasks", ["type": "test.a", "params": ["v": "ab", "n": 5.0]])
            #expect(wrongType.error == "Parameter validation failed: Type mismatch at n: expected integer, got number")

            await expectValidation("Parameter validation failed: String too short at v: minimum length is 2") {
                try await h.client.createTask(type: "test.a", params: ["v": "a"])
            }
            #expect(try await h.taskCount() == 0)
            _ = try await h.client.createTask(type: "test.a", params: ["v": "ok", "n": 10, "e": "y"])
            #expect(try await h.taskCount() == 1)
        }
    }

    @Test func wholeFloatsReachTheServerAsFloats() async throws {
        try await TaskManagerHarness.with { h in
            _ = try await h.client.registerTaskType(
                name: "test.num", version: "1",
                paramSchema: ["type": "object", "properties": ["x": ["type": "number"]]])
            // PHP's validator: an integer is not a "number".
            await expectValidation("Parameter validation failed: Type mismatch at x: expected number, got integer") {
                try await h.client.createTask(type: "test.num", params: ["x": 1])
            }
            let created = try await h.client.createTask(type: "test.num", params: ["x": 1.0])
            // Stored (and hashed) as json_encode writes it: `1`.
            #expect(created.dedupeKey == DedupeKey.compute(type: "test.num", paramsJSON: #"{"x":1}"#))
            #expect(try await h.raw(.GET, "/api/tasks/\(created.id)").text.contains(#""params":{"x":1}"#))
        }
    }

    @Test func duplicateReturnsTheExistingTaskInEveryStatus() async throws {
        try await TaskManagerHarness.with(configure: { $0.maxAttempts = 1 }) { h in
            let typeID = try await h.registerOpenType()
            let params: JSONValue = ["v": "abc", "n": 5]
            let created = try await h.client.createTask(type: "test.a", params: params)
            #expect(!created.deduplicated)

            let dup = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a", "params": params])
            #expect(dup.status == 200)
            #expect(keys(dup.data) == ["id", "status", "deduplicated", "message"])
            #expect(
                dup.data?["id"] == .int(created.id) && dup.data?["status"] == "pending"
                    && dup.data?["deduplicated"] == true)
            #expect(dup.data?["message"] == "Task already exists (deduplicated)")

            // claimed
            _ = try #require(try await h.client.claimTask(workerID: "w1", taskTypeID: typeID))
            var again = try await h.client.createTask(type: "test.a", params: params)
            #expect(again.id == created.id && again.deduplicated && again.status == "claimed")
            // completed
            _ = try await h.client.completeTask(id: created.id, workerID: "w1", success: true)
            again = try await h.client.createTask(type: "test.a", params: params)
            #expect(again.id == created.id && again.deduplicated && again.status == "completed")
            // failed (one attempt allowed)
            let other = try await h.client.createTask(type: "test.a", params: ["v": "other"])
            _ = try #require(try await h.client.claimTask(workerID: "w1", taskTypeID: typeID))
            #expect(
                try await h.client.completeTask(id: other.id, workerID: "w1", success: false, error: "x").status
                    == "failed")
            again = try await h.client.createTask(type: "test.a", params: ["v": "other"])
            #expect(again.id == other.id && again.deduplicated && again.status == "failed")

            #expect(try await h.taskCount() == 2)
        }
    }

    @Test func keyOrderMakesTwoTasks() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let a = try await h.client.createTask(type: "test.a", params: ["v": "abc", "n": 5])
            let b = try await h.client.createTask(type: "test.a", params: ["n": 5, "v": "abc"])
            #expect(a.id != b.id && !b.deduplicated)
            #expect(a.dedupeKey != b.dedupeKey)
            // The stored params keep the request's key order.
            #expect(keys(try await h.client.getTask(id: b.id).params) == ["n", "v"])
            #expect(try await h.taskCount() == 2)
        }
    }

    @Test func nestedEmptyObjectEqualsEmptyArray() async throws {
        try await TaskManagerHarness.with { h in
            let typeID = try await h.registerOpenType()
            let a = try await h.client.createTask(type: "test.a", params: ["v": "ok", "nested": [:]])
            let b = try await h.client.createTask(type: "test.a", params: ["v": "ok", "nested": []])
            #expect(b.deduplicated && b.id == a.id)
            let claimed = try #require(try await h.client.claimTask(workerID: "w", taskTypeID: typeID))
            let raw = claimed.params
            #expect(raw == ["v": "ok", "nested": []])
            #expect(try await h.taskCount() == 1)
        }
    }

    @Test func unicodeAndSlashesAreStoredUnescaped() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let r = try await h.rawJSON(
                .POST, "/api/tasks", ["type": "test.a", "params": ["path": "a/b", "text": "žluťoučký 🐎"]])
            let id = try #require(r.data?["id"]?.intValue)
            let get = try await h.raw(.GET, "/api/tasks/\(id)")
            #expect(get.text.contains(#""params":{"path":"a/b","text":"žluťoučký 🐎"}"#))
            // sha256("test.a\0{"path":"a/b","text":"žluťoučký 🐎"}") with nothing escaped
            #expect(
                r.data?["dedupe_key"]?.stringValue
                    == DedupeKey.compute(type: "test.a", paramsJSON: #"{"path":"a/b","text":"žluťoučký 🐎"}"#))
        }
    }
}
