import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing

@Suite struct ConfigTests {
    let file = "/etc/taskbridge/bridge.conf"

    @Test func shippedConfigLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let c = try ConfigLoader.load(path: root.appendingPathComponent("bridge.conf").path, environment: [:])
        #expect(c.legacy.database == root.appendingPathComponent("data/worker_queue.db").path)
        #expect(c.legacy.createIfMissing)
        #expect(c.taskManager.isEmbedded)
        #expect(c.embedded.port == 8787 && c.embedded.database.hasSuffix("data/taskmanager.db"))
        #expect(c.types.map(\.name) == ["PrismQ.YouTube.Channel.Scrape", "PrismQ.YouTube.Video.Scrape"])
        #expect(c.types[0].paramSchema["required"] == ["channel_url"])
    }

    @Test(arguments: [
        ("[legacy]\ndatabse = \"x.db\"", "unknown key [legacy] databse"),
        ("[legacy]\ntable = \"task queue; DROP\"", "is not a plain SQL identifier"),
        ("[legacy]\ncreate_if_missing = \"yes\"", "[legacy] create_if_missing must be true or false"),
        ("[bridge]\nbatch_size = 0", "[bridge] batch_size must be 1..1000"),
        ("[taskmanager]\napi_key = \"secret\"", "api_key must not live in the file"),
        ("[taskmanager]\nurl = \"http://localhost:8000\"", "must include the /api base path"),
        ("[types.x]\nname = \"X\"\nmode = \"foward\"", "[types.x] mode = \"foward\" is not one of"),
        ("[types.x]\nversion = \"1\"", "[types.x] name is required"),
        (
            "[types.x]\nname = \"X\"\nparam_schema = { properties = {} }",
            "param_schema must be a table with a \"type\" key"
        ),
        ("[types.x]\nname = \"X\"\nshadow_ignore = \"fetched_at\"", "shadow_ignore must be a list of result paths"),
        ("[types.x]\nname = \"X\"\nshadow_timeout = \"soon\"", "shadow_timeout must be seconds or a duration"),
        ("[types.x]\nname = \"X\"\nshadow_min_match = 99", "shadow_min_match must be above 0 and at most 1"),
        ("[types.x]\nname = \"X\"\nshadow_min_compared = 0", "shadow_min_compared must be at least 1"),
        ("[unknown]\na = 1", "unknown key unknown"),
        ("[legacy\n", "TOML syntax error"),
    ])
    func errorsNameTheKeyAndTheFile(text: String, fragment: String) {
        #expect {
            _ = try ConfigLoader.parse(text, file: file, environment: [:])
        } throws: { error in
            let s = "\(error)"
            return s.hasPrefix(file) && s.contains(fragment)
        }
    }

    @Test func shadowSettingsAreRead() throws {
        let c = try ConfigLoader.parse(
            """
            [types.x]
            name = "X"
            mode = "shadow"
            shadow_ignore = ["fetched_at", "items[*].view_count"]
            shadow_timeout = "30m"
            shadow_min_compared = 50
            shadow_min_match = 0.95
            """, file: file, environment: [:])
        let m = try #require(c.types.first)
        #expect(m.mode == .shadow && m.shadowIgnore == ["fetched_at", "items[*].view_count"])
        #expect(m.shadowTimeoutSeconds == 1_800 && m.shadowMinCompared == 50 && m.shadowMinMatch == 0.95)
    }

    @Test func secretNeverEchoed() {
        #expect {
            _ = try ConfigLoader.parse("[taskmanager]\napi_key = \"hunter2-secret\"", file: file, environment: [:])
        } throws: { !"\($0)".contains("hunter2") }
    }

    @Test func environmentAndDotEnvOverrides() throws {
        let dir = try TemporaryDirectory()
        try "TASKMANAGER_API_URL=http://from-dotenv:8000/api\nTASKMANAGER_API_KEY='dotenv-key'\n".write(
            toFile: dir.path(".env"), atomically: true, encoding: .utf8)
        let path = dir.path("bridge.conf")
        try "[legacy]\ndatabase = \"q.db\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let fromDotEnv = try ConfigLoader.load(path: path, environment: [:])
        #expect(
            fromDotEnv.taskManager.url == "http://from-dotenv:8000/api" && fromDotEnv.taskManager.apiKey == "dotenv-key"
        )
        #expect(fromDotEnv.legacy.database == dir.path("q.db"), "relative to the config file")
        let fromEnv = try ConfigLoader.load(
            path: path,
            environment: ["TASKMANAGER_API_URL": "https://env.example/api", "TASKMANAGER_API_KEY": "env-key"])
        #expect(fromEnv.taskManager.url == "https://env.example/api" && fromEnv.taskManager.apiKey == "env-key")
    }
}
