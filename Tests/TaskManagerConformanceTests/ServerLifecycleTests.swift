import Logging
import Synchronization
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer
import Testing

/// Keeps every log event, so a test can assert what the server said.
final class LogRecorder: Sendable {
    private let events = Mutex<[(Logger.Level, String)]>([])

    func logger(label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    func messages(atLeast level: Logger.Level) -> [String] {
        events.withLock { $0.filter { $0.0 >= level }.map { "\($0.0): \($0.1)" } }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            recorder.events.withLock { $0.append((event.level, "\(event.message)")) }
        }
    }
}

@Suite("Embedded server start, stop and restart")
struct ServerLifecycleTests {
    @Test func stopIsQuietAndTheDatabaseSurvivesARestart() async throws {
        let dir = try TemporaryDirectory(prefix: "lifecycle")
        let path = dir.path("taskmanager.db")
        let log = LogRecorder()
        let config = ServerConfiguration(apiKey: "lifecycle-key")

        let first = try EmbeddedTaskManager(
            databasePath: path, configuration: config, logger: log.logger(label: "taskmanager"))
        let port = try await first.start()
        #expect(port > 0 && first.boundPortNumber == port)
        var cc = try ClientConfiguration(baseURL: first.baseURL, apiKey: "lifecycle-key")
        cc.connectTimeout = .milliseconds(250)
        cc.maxAttempts = 1
        let client = TaskManagerClient(configuration: cc)
        _ = try await client.registerTaskType(name: "test.a", version: "1", paramSchema: ["type": "object"])
        let created = try await client.createTask(type: "test.a", params: ["keep": "me"])

        await first.stop()
        // Stopping shuts the listener down without the cancellation errors
        // HummingbirdCore logs when its task is cancelled instead.
        #expect(log.messages(atLeast: .warning) == [])
        await first.stop()

        do throws(TaskManagerError) {
            _ = try await client.health()
            Issue.record("the stopped server still answers")
        } catch {
            guard case .transport = error else {
                Issue.record("expected .transport, got \(error)")
                await client.shutdown()
                return
            }
        }
        await client.shutdown()

        let second = try EmbeddedTaskManager(
            databasePath: path, configuration: config, logger: log.logger(label: "taskmanager"))
        try await second.start()
        let again = TaskManagerClient(
            configuration: try ClientConfiguration(baseURL: second.baseURL, apiKey: "lifecycle-key"))
        let task = try await again.getTask(id: created.id)
        #expect(task.params == ["keep": "me"] && task.status == .pending)
        #expect(try await again.createTask(type: "test.a", params: ["keep": "me"]).deduplicated)
        await again.shutdown()
        await second.stop()
        #expect(log.messages(atLeast: .warning) == [])
    }

    @Test func refusesToRunWithoutAKey() {
        #expect(throws: EmbeddedServerError.self) {
            _ = try EmbeddedTaskManager(databasePath: "/tmp/unused.db", configuration: ServerConfiguration(apiKey: ""))
        }
    }
}
