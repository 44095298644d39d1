import Foundation
import TaskManagerModel

/// How to reach a TaskManager, configured the way PrismQ's Python client is:
/// `TASKMANAGER_API_URL` and `TASKMANAGER_API_KEY` from the environment or a
/// `.env` file, explicit values winning over both.
public struct ClientConfiguration: Sendable {
    /// Base URL including the `/api` prefix, without a trailing slash.
    public var baseURL: String
    public var apiKey: String
    /// Whole-request deadline.
    public var requestTimeout: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(5)
    /// Requests in flight at once through this client; further calls wait.
    public var maxConcurrentRequests: Int = 64
    /// Attempts for requests that are safe to repeat (GETs, and creates, which
    /// the API dedupes). Claim, complete and progress are never retried here.
    public var maxAttempts: Int = 3
    /// First retry delay; doubles per attempt, with jitter.
    public var retryBaseDelay: Duration = .milliseconds(100)
    /// The longest `Retry-After` this client sleeps through by itself; longer
    /// waits surface as `.rateLimited` for the caller to schedule.
    public var maxRetryAfter: Duration = .seconds(5)

    public init(baseURL: String, apiKey: String) throws(TaskManagerError) {
        self.baseURL = try Self.validate(url: baseURL)
        guard !apiKey.isEmpty else { throw .configuration("TASKMANAGER_API_KEY is empty") }
        self.apiKey = apiKey
    }

    /// Explicit values, then the process environment, then the `.env` file.
    public static func resolve(
        apiURL: String? = nil, apiKey: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        dotEnvPath: String? = ".env"
    ) throws(TaskManagerError) -> ClientConfiguration {
        let dotEnv = dotEnvPath.flatMap { DotEnv.load(path: $0) } ?? [:]
        guard let url = apiURL ?? environment["TASKMANAGER_API_URL"] ?? dotEnv["TASKMANAGER_API_URL"] else {
            throw .configuration("TASKMANAGER_API_URL is not set (environment or .env), e.g. http://localhost:8000/api")
        }
        guard let key = apiKey ?? environment["TASKMANAGER_API_KEY"] ?? dotEnv["TASKMANAGER_API_KEY"], !key.isEmpty
        else {
            throw .configuration("TASKMANAGER_API_KEY is not set (environment or .env)")
        }
        return try ClientConfiguration(baseURL: url, apiKey: key)
    }

    /// The API lives under `/api`; PrismQ's own `.env` examples disagree on
    /// this, so a URL without it is refused with the fix spelled out.
    public static func validate(url: String) throws(TaskManagerError) -> String {
        var u = url.trimmingCharacters(in: .whitespaces)
        while u.hasSuffix("/") { u.removeLast() }
        guard let parsed = URL(string: u), let scheme = parsed.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            parsed.host != nil
        else {
            throw .configuration("TASKMANAGER_API_URL is not an http(s) URL: \(u)")
        }
        guard parsed.path.split(separator: "/").contains("api") else {
            throw .configuration(
                "TASKMANAGER_API_URL must include the /api base path (for example \(u)/api); got \(u)")
        }
        return u
    }
}
