import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TaskManagerModel

/// A W3C WebDriver session against Debian's `chromedriver` and headless
/// `chromium`, spoken over HTTP with AsyncHTTPClient: what the dashboard's
/// browser test drives the real page with.
public final class WebDriver: Sendable {
    public static let driverPath = "/usr/bin/chromedriver"
    public static let browserPath = "/usr/bin/chromium"
    public static var available: Bool {
        FileManager.default.isExecutableFile(atPath: driverPath)
            && FileManager.default.isExecutableFile(atPath: browserPath)
    }

    let driver: AsyncProcess
    let base: String
    public let session: String
    let profile: TemporaryDirectory

    private init(driver: AsyncProcess, base: String, session: String, profile: TemporaryDirectory) {
        self.driver = driver
        self.base = base
        self.session = session
        self.profile = profile
    }

    /// Starts chromedriver on a free port and opens a headless session.
    public static func start(width: Int = 1280, height: Int = 900) async throws -> WebDriver {
        let port = try FreePort.find()
        let driver = AsyncProcess(
            executable: URL(fileURLWithPath: driverPath), arguments: ["--port=\(port)", "--allowed-ips=127.0.0.1"])
        try driver.start()
        let base = "http://127.0.0.1:\(port)"
        let ready = try await eventually(timeout: .seconds(30), interval: .milliseconds(100)) {
            let status = try? await Self.call(.GET, base + "/status", nil)
            return status?["ready"]?.boolValue == true || !driver.isRunning
        }
        guard ready, driver.isRunning else {
            await driver.kill()
            throw HarnessError("chromedriver did not come up: \(driver.stderr.suffix(2000))")
        }
        let profile = try TemporaryDirectory()
        let args: [JSONValue] = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", .string("--window-size=\(width),\(height)"),
            .string("--user-data-dir=\(profile.path("profile"))"),
        ]
        let caps: JSONValue = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": ["binary": .string(browserPath), "args": .array(args)],
                ]
            ]
        ]
        do {
            let answer = try await call(.POST, base + "/session", caps)
            guard let id = answer["sessionId"]?.stringValue else {
                throw HarnessError("no session id in \(PHPJSON.encode(answer))")
            }
            return WebDriver(driver: driver, base: base, session: id, profile: profile)
        } catch {
            await driver.kill()
            throw error
        }
    }

    public func quit() async {
        _ = try? await Self.call(.DELETE, "\(base)/session/\(session)", nil)
        await driver.kill()
    }

    // MARK: - Commands

    public func navigate(_ url: String) async throws {
        _ = try await command(.POST, "url", ["url": .string(url)])
    }

    /// Runs `script` (a function body) in the page and returns its value.
    @discardableResult
    public func execute(_ script: String, _ args: [JSONValue] = []) async throws -> JSONValue {
        try await command(.POST, "execute/sync", ["script": .string(script), "args": .array(args)])
    }

    public func element(_ css: String) async throws -> String {
        let found = try await command(.POST, "element", ["using": "css selector", "value": .string(css)])
        guard let id = found["element-6066-11e4-a52e-4f735466cecf"]?.stringValue else {
            throw HarnessError("no element id for \(css): \(PHPJSON.encode(found))")
        }
        return id
    }

    /// Finds and clicks; found again when the page replaced the element in
    /// between (a live page redraws).
    public func click(_ css: String) async throws {
        for attempt in 0..<5 {
            do {
                _ = try await command(.POST, "element/\(try await element(css))/click", [:])
                return
            } catch let e as HarnessError where e.description.contains("stale element") && attempt < 4 {
                continue
            }
        }
    }

    public func type(_ css: String, _ text: String) async throws {
        let id = try await element(css)
        _ = try await command(.POST, "element/\(id)/clear", [:])
        _ = try await command(.POST, "element/\(id)/value", ["text": .string(text)])
    }

    public func source() async throws -> String {
        try await command(.GET, "source", nil).stringValue ?? ""
    }

    /// Emulates a viewport of this size (a phone at 390 px) through the
    /// DevTools protocol, which, unlike a window resize, has no minimum width.
    public func setViewport(width: Int, height: Int, mobile: Bool) async throws {
        _ = try await command(
            .POST, "goog/cdp/execute",
            [
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": [
                    "width": .int(Int64(width)), "height": .int(Int64(height)), "deviceScaleFactor": 1,
                    "mobile": .bool(mobile),
                ],
            ])
    }

    /// A PNG of the whole page (beyond the viewport), written to `path`.
    public func screenshot(to path: String) async throws {
        let shot = try await command(
            .POST, "goog/cdp/execute",
            ["cmd": "Page.captureScreenshot", "params": ["format": "png", "captureBeyondViewport": true]])
        guard let text = shot["data"]?.stringValue, let png = Data(base64Encoded: text) else {
            throw HarnessError("no screenshot data")
        }
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try png.write(to: URL(fileURLWithPath: path))
    }

    func command(_ method: HTTPMethod, _ path: String, _ body: JSONValue?) async throws -> JSONValue {
        try await Self.call(method, "\(base)/session/\(session)/\(path)", body)
    }

    static func call(_ method: HTTPMethod, _ url: String, _ body: JSONValue?) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            // PHP's encoding writes an empty object as `[]`; WebDriver wants `{}`.
            let text = body.objectMembers?.isEmpty == true ? "{}" : PHPJSON.encode(body)
            request.body = .bytes(ByteBuffer(string: text))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let answer = try JSONParser.parse(Array(buffer: bytes))
        let value = answer["value"] ?? .null
        if response.status.code >= 400 {
            throw HarnessError(
                "WebDriver \(method.rawValue) \(url): \(response.status.code) "
                    + (value["message"]?.stringValue ?? PHPJSON.encode(value)).prefix(500))
        }
        return value
    }
}
