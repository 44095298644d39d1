import Foundation
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing

@Suite("ClientConfiguration and .env")
struct ClientConfigurationTests {
    @Test func urlWithoutApiIsRejectedWithTheFix() {
        for url in ["http://localhost:8000", "http://localhost:8000/", "https://api.prismq.nomoos.cz", "http://h/apix"]
        {
            do throws(TaskManagerError) {
                _ = try ClientConfiguration(baseURL: url, apiKey: "k")
                Issue.record("accepted \(url)")
            } catch {
                guard case .configuration(let message) = error else {
                    Issue.record("expected .configuration, got \(error)")
                    continue
                }
                #expect(message.contains("must include the /api base path"), "\(message)")
                var trimmed = url
                while trimmed.hasSuffix("/") { trimmed.removeLast() }
                #expect(message.contains("\(trimmed)/api"), "\(message)")
            }
        }
    }

    @Test func acceptedURLsAreNormalised() throws {
        #expect(
            try ClientConfiguration(baseURL: "http://localhost:8000/api/", apiKey: "k").baseURL
                == "http://localhost:8000/api")
        #expect(
            try ClientConfiguration(baseURL: " https://api.prismq.nomoos.cz/api ", apiKey: "k").baseURL
                == "https://api.prismq.nomoos.cz/api")
        #expect(
            try ClientConfiguration(baseURL: "http://10.0.0.5/prismq/api", apiKey: "k").baseURL
                == "http://10.0.0.5/prismq/api")
    }

    @Test func otherBadSettingsAreRejected() {
        #expect(throws: TaskManagerError.self) { try ClientConfiguration(baseURL: "ftp://host/api", apiKey: "k") }
        #expect(throws: TaskManagerError.self) { try ClientConfiguration(baseURL: "not a url", apiKey: "k") }
        #expect(throws: TaskManagerError.configuration("TASKMANAGER_API_KEY is empty")) {
            try ClientConfiguration(baseURL: "http://h/api", apiKey: "")
        }
    }

    @Test func dotEnvParsing() {
        let text = """
            # PrismQ_WD/.env
            TASKMANAGER_API_URL=http://localhost:8000/api
            export TASKMANAGER_API_KEY = "quoted value # not a comment"

            OTHER='single'
            INLINE=value # comment
            EQUALS=a=b=c
            EMPTY=
            not a pair
              SPACED  =  x
            """
        let env = DotEnv.parse(text)
        #expect(env["TASKMANAGER_API_URL"] == "http://localhost:8000/api")
        #expect(env["TASKMANAGER_API_KEY"] == "quoted value # not a comment")
        #expect(env["OTHER"] == "single")
        #expect(env["INLINE"] == "value")
        #expect(env["EQUALS"] == "a=b=c")
        #expect(env["EMPTY"] == "")
        #expect(env["SPACED"] == "x")
        #expect(env.count == 7)
    }

    @Test func precedenceIsExplicitThenEnvironmentThenDotEnv() throws {
        let dir = try TemporaryDirectory(prefix: "dotenv")
        let path = dir.path(".env")
        try "TASKMANAGER_API_URL=http://dotenv:8000/api\nTASKMANAGER_API_KEY=dotenv-key\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let env = ["TASKMANAGER_API_URL": "http://env:8000/api", "TASKMANAGER_API_KEY": "env-key"]

        var c = try ClientConfiguration.resolve(environment: [:], dotEnvPath: path)
        #expect(c.baseURL == "http://dotenv:8000/api" && c.apiKey == "dotenv-key")

        c = try ClientConfiguration.resolve(environment: env, dotEnvPath: path)
        #expect(c.baseURL == "http://env:8000/api" && c.apiKey == "env-key")

        c = try ClientConfiguration.resolve(
            apiURL: "http://explicit/api", apiKey: "explicit-key", environment: env, dotEnvPath: path)
        #expect(c.baseURL == "http://explicit/api" && c.apiKey == "explicit-key")

        // Each setting resolves on its own.
        c = try ClientConfiguration.resolve(
            environment: ["TASKMANAGER_API_URL": "http://env:8000/api"], dotEnvPath: path)
        #expect(c.baseURL == "http://env:8000/api" && c.apiKey == "dotenv-key")
        c = try ClientConfiguration.resolve(apiKey: "explicit-key", environment: [:], dotEnvPath: path)
        #expect(c.baseURL == "http://dotenv:8000/api" && c.apiKey == "explicit-key")

        // A missing .env file is not an error when the environment suffices.
        c = try ClientConfiguration.resolve(environment: env, dotEnvPath: dir.path("missing.env"))
        #expect(c.apiKey == "env-key")
        c = try ClientConfiguration.resolve(environment: env, dotEnvPath: nil)
        #expect(c.apiKey == "env-key")
    }

    @Test func missingSettingsNameTheVariable() throws {
        let dir = try TemporaryDirectory(prefix: "dotenv")
        let path = dir.path(".env")
        try "# nothing here\n".write(toFile: path, atomically: true, encoding: .utf8)
        do throws(TaskManagerError) {
            _ = try ClientConfiguration.resolve(environment: [:], dotEnvPath: path)
            Issue.record("expected failure")
        } catch {
            guard case .configuration(let m) = error else { Issue.record("\(error)"); return }
            #expect(m.contains("TASKMANAGER_API_URL"))
        }
        do throws(TaskManagerError) {
            _ = try ClientConfiguration.resolve(environment: ["TASKMANAGER_API_URL": "http://h/api"], dotEnvPath: path)
            Issue.record("expected failure")
        } catch {
            guard case .configuration(let m) = error else { Issue.record("\(error)"); return }
            #expect(m.contains("TASKMANAGER_API_KEY"))
        }
        // The .env example without /api is caught at resolve time.
        try "TASKMANAGER_API_URL=http://localhost:8000\nTASKMANAGER_API_KEY=k\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: TaskManagerError.self) { try ClientConfiguration.resolve(environment: [:], dotEnvPath: path) }
    }

    @Test func configurationErrorsDoNotCarryTheKey() {
        do throws(TaskManagerError) {
            _ = try ClientConfiguration.resolve(
                apiURL: "http://h", apiKey: "SEKRET-key", environment: [:], dotEnvPath: nil)
            Issue.record("expected failure")
        } catch {
            #expect(!error.description.contains("SEKRET"))
        }
    }
}
