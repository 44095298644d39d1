import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing
import TestSlots

@Suite("Health, envelopes and task types (spec 2, 5.1-5.4)", .heavy)
struct TaskTypeTests {
    @Test func healthAnswersWithoutKeyInTheSuccessEnvelope() async throws {
        try await TaskManagerHarness.with { h in
            let r = try await h.raw(.GET, "/api/health", auth: .none)
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "application/json")
            #expect(r.header("Cache-Control") == "no-store, no-cache, must-revalidate, max-age=0")
            let json = try #require(r.json)
            #expect(keys(json) == ["success", "message", "data", "timestamp"])
            #expect(json["success"] == true && json["message"] == "Success")
            #expect(isNow(json["timestamp"]?.intValue))
            #expect(keys(r.data) == ["status", "timestamp", "database"])
            #expect(r.data?["status"] == "healthy" && r.data?["database"] == "connected")
            if case .int = r.data?["timestamp"] {} else { Issue.record("data.timestamp must be an integer") }

            let viaClient = try await h.client.health()
            #expect(viaClient["status"] == "healthy")
        }
    }

    @Test func errorEnvelopeCarriesDetailsOnlyForRequestValidation() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let validation = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.a"])
            #expect(validation.status == 400)
            #expect(validation.header("Content-Type") == "application/json")
            #expect(keys(validation.json) == ["success", "error", "timestamp", "details"])
            #expect(validation.json?["success"] == false)
            #expect(isNow(validation.json?["timestamp"]?.intValue))

            let handler = try await h.rawJSON(.POST, "/api/tasks", ["type": "nope", "params": ["a": 1]])
            #expect(handler.status == 404)
            #expect(keys(handler.json) == ["success", "error", "timestamp"])
            #expect(handler.error == "Task type not found")
        }
    }

    @Test func registerCreatesThenUpdatesTheSameRow() async throws {
        try await TaskManagerHarness.with { h in
            let schema: JSONValue = ["type": "object", "properties": ["v": ["type": "string"]]]
            let first = try await h.rawJSON(
                .POST, "/api/task-types/register", ["name": "test.a", "version": "1.0.0", "param_schema": schema])
            #expect(first.status == 200)
            #expect(first.json?["message"] == "Success")
            #expect(keys(first.data) == ["id", "name", "version", "created"])
            #expect(
                first.data?["created"] == true && first.data?["name"] == "test.a" && first.data?["version"] == "1.0.0")
            guard case .int(let id) = first.data?["id"] else {
                Issue.record("id must be an integer")
                return
            }

            let second = try await h.rawJSON(
                .POST, "/api/task-types/register",
                ["name": "test.a", "version": "1.0.1", "param_schema": schema, "description": "ignored"])
            #expect(second.status == 200)
            #expect(keys(second.data) == ["id", "name", "version", "updated"])
            #expect(
                second.data?["id"] == .int(id) && second.data?["updated"] == true && second.data?["version"] == "1.0.1")

            let viaClient = try await h.client.registerTaskType(name: "test.a", version: "2.0.0", paramSchema: schema)
            #expect(viaClient.id == id && !viaClient.created)
            let type = try await h.client.getTaskType(name: "test.a")
            #expect(type.version == "2.0.0")
        }
    }

    @Test func registerTrimsAndAcceptsSchemaAsJSONString() async throws {
        try await TaskManagerHarness.with { h in
            let r = try await h.rawJSON(
                .POST, "/api/task-types/register",
                [
                    "name": "  test.trim \n", "version": " 1.0 ",
                    "param_schema": #"{"type":"object","properties":{"x":{}}}"#,
                ])
            #expect(r.status == 200)
            #expect(r.data?["name"] == "test.trim" && r.data?["version"] == "1.0")
            let type = try await h.client.getTaskType(name: "test.trim")
            // json_encode of a decoded `{}` gives `[]`.
            #expect(type.paramSchema == ["type": "object", "properties": ["x": []]])
        }
    }

    @Test func registerRejectsMissingFieldsAndBadSchemas() async throws {
        try await TaskManagerHarness.with { h in
            let cases: [(JSONValue, String)] = [
                (["version": "1", "param_schema": ["type": "object"]], "Missing required field: name"),
                (["name": "", "version": "1", "param_schema": ["type": "object"]], "Missing required field: name"),
                (["name": "a", "param_schema": ["type": "object"]], "Missing required field: version"),
                (["name": "a", "version": "1"], "Missing required field: param_schema"),
                (["name": "a", "version": "1", "param_schema": ""], "Missing required field: param_schema"),
                (["name": "a", "version": "1", "param_schema": "not-an-object"], "Invalid JSON schema format"),
                (["name": "a", "version": "1", "param_schema": "{\"type\":"], "Invalid JSON schema format"),
                (
                    ["name": "a", "version": "1", "param_schema": ["properties": [:]]],
                    "JSON schema must have a \"type\" property"
                ),
                (
                    ["name": "a", "version": "1", "param_schema": #"{"required":["x"]}"#],
                    "JSON schema must have a \"type\" property"
                ),
            ]
            for (body, message) in cases {
                let r = try await h.rawJSON(.POST, "/api/task-types/register", body)
                #expect(r.status == 400, "\(body)")
                #expect(r.error == message, "\(body)")
                #expect(keys(r.json) == ["success", "error", "timestamp"], "\(body)")
            }
            await expectValidation("Missing required field: name") {
                try await h.client.registerTaskType(name: "", version: "1", paramSchema: ["type": "object"])
            }
            await expectValidation("JSON schema must have a \"type\" property") {
                try await h.client.registerTaskType(name: "x", version: "1", paramSchema: ["properties": ["a": 1]])
            }
            let list = try await h.raw(.GET, "/api/task-types")
            #expect(list.data?["count"] == 0)
        }
    }

    @Test func getTaskTypeReturnsOneObjectOr404() async throws {
        try await TaskManagerHarness.with { h in
            let schema: JSONValue = [
                "type": "object", "properties": ["v": ["type": "string", "minLength": 2]], "required": ["v"],
            ]
            let id = try await h.client.registerTaskType(name: "test.a", version: "1.0.1", paramSchema: schema).id
            let r = try await h.raw(.GET, "/api/task-types/test.a")
            #expect(r.status == 200)
            #expect(keys(r.data) == ["id", "name", "version", "param_schema", "is_active", "created_at", "updated_at"])
            #expect(r.data?["id"] == .int(id) && r.data?["is_active"] == 1 && r.data?["param_schema"] == schema)
            #expect(r.data?["created_at"]?.stringValue?.wholeMatch(of: /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/) != nil)

            let missing = try await h.raw(.GET, "/api/task-types/test.nonexistent")
            #expect(missing.status == 404 && missing.error == "Task type not found")
            // Path segments are not percent-decoded.
            let encoded = try await h.raw(.GET, "/api/task-types/test%2Ea")
            #expect(encoded.status == 404)

            let info = try await h.client.getTaskType(name: "test.a")
            #expect(info.id == id && info.isActive && info.paramSchema == schema)
            await expectError(.notFound("Task type not found")) {
                try await h.client.getTaskType(name: "test.nonexistent")
            }
        }
    }

    @Test func listTaskTypesCarriesUsageAndSortsByIt() async throws {
        try await TaskManagerHarness.with { h in
            let a = try await h.registerOpenType("test.a")
            let b = try await h.registerOpenType("test.b")
            let c = try await h.registerOpenType("test.c")
            for i in 0..<2 { _ = try await h.client.createTask(type: "test.b", params: ["i": .int(Int64(i))]) }
            _ = try await h.client.createTask(type: "test.a", params: ["i": 0])

            let r = try await h.raw(.GET, "/api/task-types")
            #expect(r.status == 200)
            #expect(r.data?["count"] == 3)
            let items = try #require(r.data?["items"]?.arrayValue)
            #expect(items.map { $0["id"] } == [.int(b), .int(a), .int(c)])
            #expect(items.map { $0["usage_count"] } == [2, 1, 0])
            #expect(items[0]["last_used_at"]?.stringValue != nil)
            #expect(items[2]["last_used_at"] == .null)
            #expect(items[0]["param_schema"] == nil)

            let byName = try await h.raw(.GET, "/api/task-types?sort_by=name&sort_order=asc")
            #expect(byName.data?["items"]?.arrayValue?.map { $0["name"] } == ["test.a", "test.b", "test.c"])

            let viaClient = try await h.client.listTaskTypes()
            #expect(viaClient.map(\.name) == ["test.b", "test.a", "test.c"])
            #expect(viaClient.map(\.usageCount) == [2, 1, 0])
        }
    }

    @Test func activeOnlyFiltersInactiveTypesAndRegisterReactivates() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType("test.a")
            try await h.registerOpenType("test.off")
            // Nothing in the API deactivates a type; an operator would, in the DB.
            try await h.sql("UPDATE task_types SET is_active = 0 WHERE name = 'test.off'")

            for query in ["active_only=true", "active_only=1", "active_only=TRUE"] {
                let r = try await h.raw(.GET, "/api/task-types?\(query)")
                #expect(r.data?["items"]?.arrayValue?.map { $0["name"] } == ["test.a"], "\(query)")
            }
            let all = try await h.raw(.GET, "/api/task-types?active_only=0")
            #expect(all.data?["count"] == 2)
            #expect(try await h.client.listTaskTypes(activeOnly: true).map(\.name) == ["test.a"])
            #expect(try await h.client.getTaskType(name: "test.off").isActive == false)

            let create = try await h.rawJSON(.POST, "/api/tasks", ["type": "test.off", "params": ["a": 1]])
            #expect(create.status == 400 && create.error == "Task type is not active")
            #expect(try await h.taskCount() == 0)

            try await h.registerOpenType("test.off")
            #expect(try await h.client.getTaskType(name: "test.off").isActive)
            _ = try await h.client.createTask(type: "test.off", params: ["a": 1])
        }
    }
}
