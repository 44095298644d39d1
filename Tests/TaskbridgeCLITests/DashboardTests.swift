import AsyncHTTPClient
import BridgeConfig
import Foundation
import NIOCore
import NIOHTTP1
import TaskBridgeTesting
import TaskManagerModel
import Testing
import TestSlots

let video = TypeMapping(legacyType: "youtube_video_scrape", name: "PrismQ.YouTube.Video.Scrape", mode: .off)

/// A row the bridge must refuse, with markup in what ends up in its error.
let plantedScript = "<script>window.__pwned=1;document.title='pwned'</script>"

struct HTTPAnswer {
    var status: UInt
    var headers: [String: String]
    var body: String
}

func http(
    _ method: HTTPMethod, _ url: String, headers: [String: String] = [:], body: String? = nil
) async throws -> HTTPAnswer {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (k, v) in headers { request.headers.add(name: k, value: v) }
    if let body { request.body = .bytes(ByteBuffer(string: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    var h: [String: String] = [:]
    for field in response.headers { h[field.name.lowercased()] = field.value }
    return HTTPAnswer(status: response.status.code, headers: h, body: String(buffer: bytes))
}

/// A running bridge with a forward type, an off type, a quarantined row that
/// carries markup in its error, and the admin token in a file of its own.
struct DashboardScene {
    let h: BridgeHarness
    let bridge: BridgeProcess
    let tokenPath: String
    let badID: Int64
    var base: String { "http://127.0.0.1:\(bridge.metricsPort!)" }
    var token: String {
        get throws {
            try String(contentsOfFile: tokenPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func with(_ body: (DashboardScene) async throws -> Void) async throws {
        var forward = channel
        forward.mode = .forward
        try await BridgeHarness.with(types: [forward, video], startEngine: false) { h in
            let tokenPath = h.tm.directory.path("admin.token")
            let bridge = try BridgeProcess(
                harness: h, metrics: true, extraBridge: ["admin_token_file = \(PHPJSON.encode(.string(tokenPath)))"])
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            let producer = try h.producer()
            for i in 0..<20 { try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "c\#(i)"}"#) }
            for i in 0..<5 { try producer.insert(type: video.legacyType, parameters: #"{"video": "v\#(i)"}"#) }
            let bad = try producer.insert(
                type: channel.legacyType, parameters: #"{"channel_url": "bad"}"#, runAfter: plantedScript)
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_ledger WHERE state = 'sent'") == 20
                        && h.scalar("SELECT COUNT(*) FROM _taskbridge_quarantine WHERE legacy_id = ?", [bad]) == 1
                }, "\(bridge.stderrText.suffix(2000))")
            try await body(DashboardScene(h: h, bridge: bridge, tokenPath: tokenPath, badID: bad))
        }
    }

    func status() async throws -> JSONValue {
        let r = try await CLIRun.run(["status", "--json"], harness: h)
        guard r.status == 0 else { throw HarnessError("status --json: \(r.stderr)") }
        return try JSONParser.parse(r.stdout)
    }
}

/// The dashboard's HTTP surface, without a browser: the token, the methods,
/// the headers that keep planted markup inert, and what must never be served.
@Suite(.serialized, .heavy) struct DashboardHTTPTests {
    @Test func actionsNeedTheTokenAndGETChangesNothing() async throws {
        try await DashboardScene.with { s in
            let attrs = try FileManager.default.attributesOfItem(atPath: s.tokenPath)
            #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600, "generated with mode 0600")
            #expect(!s.bridge.stderrText.contains(try s.token), "the token is never logged")

            let retry = "\(s.base)/dashboard/actions/quarantine-retry"
            let body = #"{"ids": [\#(s.badID)]}"#
            let json = ["Content-Type": "application/json"]
            let none = try await http(.POST, retry, headers: json, body: body)
            #expect(none.status == 401, "\(none.body)")
            let wrong = try await http(
                .POST, retry, headers: json.merging(["X-Taskbridge-Admin-Token": "guess"]) { a, _ in a }, body: body)
            #expect(wrong.status == 401)
            let get = try await http(.GET, retry)
            #expect(get.status != 200, "an action is never a GET")
            let asForm = try await http(
                .POST, retry,
                headers: [
                    "Content-Type": "application/x-www-form-urlencoded", "X-Taskbridge-Admin-Token": try s.token,
                ],
                body: "ids=\(s.badID)")
            #expect(asForm.status == 415, "only JSON bodies: \(asForm.body)")
            #expect(try s.h.scalar("SELECT COUNT(*) FROM _taskbridge_quarantine") == 1, "nothing was released")
            #expect(s.bridge.stderrText.contains("dashboard action refused"), "refusals are logged")

            let page = try await http(.GET, s.base + "/")
            #expect(page.status == 200)
            let csp = page.headers["content-security-policy"] ?? ""
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "\(csp)")
            #expect(page.headers["x-content-type-options"] == "nosniff")
            let snapshot = try await http(.GET, s.base + "/dashboard.json")
            for text in [page.body, snapshot.body, try await http(.GET, s.base + "/dashboard.js").body] {
                #expect(!text.contains(s.h.tm.apiKey), "the TaskManager key is never served")
                #expect(!text.contains(try s.token), "the admin token is never served")
            }
            // The planted markup arrives as JSON string data, for the page to show as text.
            let q = try await http(.GET, s.base + "/dashboard/quarantine.json")
            #expect(q.headers["content-type"]?.hasPrefix("application/json") == true)
            #expect(try JSONParser.parse(q.body)["entries"]?[0]?["detail"]?.stringValue?.contains("<script>") == true)

            let token = try s.token
            let authorized = json.merging(["X-Taskbridge-Admin-Token": token]) { a, _ in a }
            let noReason = try await http(
                .POST, "\(s.base)/dashboard/actions/cutover", headers: authorized,
                body: #"{"task_type": "youtube_video_scrape", "mode": "dry-run"}"#)
            #expect(noReason.status == 400, "a cutover needs a reason: \(noReason.body)")
            let gate = try await http(
                .POST, "\(s.base)/dashboard/actions/cutover", headers: authorized,
                body: #"{"task_type": "youtube_channel_scrape", "mode": "retired", "reason": "too early"}"#)
            #expect(gate.status == 409 && gate.body.contains("retire-check"), "\(gate.body)")
            let modes = try s.h.scalarText(
                "SELECT mode FROM _taskbridge_mode WHERE task_type = ?", [channel.legacyType])
            #expect(modes == "forward")

            // A cutover from the page: audited as the dashboard's; dry-run's
            // verdicts and reasons show. The off type holds 5 good rows and
            // one whose params are not JSON.
            try s.h.producer().insert(type: video.legacyType, parameters: "not json")
            let cut = try await http(
                .POST, "\(s.base)/dashboard/actions/cutover", headers: authorized,
                body: #"{"task_type": "youtube_video_scrape", "mode": "dry-run", "reason": "look first"}"#)
            #expect(cut.status == 200, "\(cut.body)")
            #expect(
                try s.h.scalar(
                    "SELECT COUNT(*) FROM _taskbridge_audit WHERE task_type = ? AND to_mode = 'dry-run' AND actor = "
                        + "'dashboard' AND reason = 'look first'", [video.legacyType]) == 1)
            #expect(
                try await eventually(timeout: .seconds(30), interval: .milliseconds(200)) {
                    try await Self.dryRunSettled(s)
                })
        }
    }

    /// The snapshot of the scene once dry-run has judged the off type's six
    /// rows and the per-minute series has caught up with the 20 forwarded.
    static func dryRunSettled(_ s: DashboardScene) async throws -> Bool {
        let d = try JSONParser.parse(try await http(.GET, s.base + "/dashboard.json").body)
        let types = d["types"]?.arrayValue ?? []
        let statusTypes = d["status"]?["types"]?.arrayValue ?? []
        guard let v = types.first(where: { $0["task_type"]?.stringValue == video.legacyType }),
            let vs = statusTypes.first(where: { $0["task_type"]?.stringValue == video.legacyType }),
            let c = types.first(where: { $0["task_type"]?.stringValue == channel.legacyType })
        else { return false }
        let forwardedInSeries = c["series"]?["forwarded"]?.arrayValue?.compactMap(\.intValue).reduce(0, +)
        let reasons = v["dry_run_reasons"]?.arrayValue ?? []
        return vs["dry_run_would_forward"]?.intValue == 5 && vs["dry_run_would_reject"]?.intValue == 1
            && reasons.count == 1 && reasons[0]["count"]?.intValue == 1 && v["stage"]?.stringValue == "dry-run"
            && forwardedInSeries == 20
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self, index < a.count else { return nil }
        return a[index]
    }
}

/// The page in a real browser (Debian's chromium through chromedriver).
/// Skipped on a machine without them unless CI is set: CI installs both, and
/// there a missing browser fails the test instead of hiding it.
@Suite(.serialized, .browser) struct DashboardBrowserTests {
    static let enabled = WebDriver.available || ProcessInfo.processInfo.environment["CI"] != nil

    /// Where the screenshots go (`.build/test-artifacts`, or `$TASKBRIDGE_ARTIFACTS`).
    static var artifacts: String {
        ProcessInfo.processInfo.environment["TASKBRIDGE_ARTIFACTS"]
            ?? FileManager.default.currentDirectoryPath + "/.build/test-artifacts"
    }

    static let counters = [
        "queued", "in_flight", "forwarded", "mirrored", "quarantined", "collapsed", "left_to_legacy", "percent",
    ]

    /// What the page shows per type, read from the DOM's data-value attributes.
    static let readPage = """
        const out = {};
        for (const card of document.querySelectorAll('#types [data-type]')) {
          const v = { stage: card.dataset.stage };
          for (const dd of card.querySelectorAll('[data-field]')) v[dd.dataset.field] = dd.dataset.value;
          out[card.dataset.type] = v;
        }
        return JSON.stringify({ types: out, loadId: document.body.dataset.loadId, title: document.title,
          pwned: window.__pwned === undefined ? null : window.__pwned,
          scripts: document.querySelectorAll('script').length });
        """

    /// When the page's last snapshot was made (changes with every redraw).
    static func generatedAt(_ wd: WebDriver) async throws -> String? {
        try await wd.execute("return document.body.dataset.generatedAt || null").stringValue
    }

    static func pageState(_ wd: WebDriver) async throws -> JSONValue {
        try JSONParser.parse(try await wd.execute(readPage).stringValue ?? "{}")
    }

    /// True when every counter of every type on the page equals `status --json`.
    static func pageMatchesStatus(_ wd: WebDriver, _ s: DashboardScene) async throws -> Bool {
        let status = try await s.status()
        let page = try await pageState(wd)["types"]
        for row in status["types"]?.arrayValue ?? [] {
            guard let type = row["task_type"]?.stringValue, let shown = page?[type] else { return false }
            if shown["stage"]?.stringValue != row["mode"]?.stringValue { return false }
            for c in counters where shown[c]?.stringValue != row[c].map({ PHPJSON.encode($0) }) { return false }
        }
        return true
    }

    @Test(.enabled(if: enabled)) func theLivePageMatchesTheCLIAndItsActionsWork() async throws {
        try #require(WebDriver.available, "CI must install chromium and chromium-driver (see .ci/run)")
        try await DashboardScene.with { s in
            let wd = try await WebDriver.start()
            defer { Task { await wd.quit() } }
            // Rows keep flowing while the page is open: one more row per redraw of the page.
            let producer = try s.h.producer()
            try await wd.navigate(s.base + "/")
            let first = try await Self.pageState(wd)
            let loadID = try #require(first["loadId"]?.stringValue)
            for i in 0..<5 {
                let shown = try await Self.generatedAt(wd)
                try producer.insert(type: channel.legacyType, parameters: #"{"channel_url": "live\#(i)"}"#)
                #expect(
                    try await eventually(timeout: .seconds(20), interval: .milliseconds(100)) {
                        try await Self.generatedAt(wd) != shown
                    }, "the page redraws by itself")
            }
            #expect(
                try await eventually(timeout: .seconds(30), interval: .milliseconds(300)) {
                    try await Self.pageMatchesStatus(wd, s)
                }, "the page shows what status --json says")

            // A mode change made with the CLI shows without a reload.
            let cut = try await CLIRun.run(
                ["cutover", video.legacyType, "dry-run", "--reason", "canary from the CLI"], harness: s.h)
            #expect(cut.status == 0, "\(cut.stderr)")
            #expect(
                try await eventually(timeout: .seconds(20), interval: .milliseconds(200)) {
                    try await Self.pageState(wd)["types"]?[video.legacyType]?["stage"]?.stringValue == "dry-run"
                })
            let afterCut = try await Self.pageState(wd)
            #expect(afterCut["loadId"]?.stringValue == loadID, "no reload")
            let auditText = try await wd.execute(
                "return document.querySelector('[data-type=\"\(video.legacyType)\"]').textContent")
            #expect(auditText.stringValue?.contains("canary from the CLI") == true)

            // The planted markup shows as text and never ran.
            let detail = try await wd.execute(
                "return document.querySelector('#quarantine-rows tr[data-id=\"\(s.badID)\"] td.detail').textContent")
            #expect(detail.stringValue?.contains(plantedScript) == true, "\(detail)")
            #expect(afterCut["pwned"]?.isNull == true && afterCut["title"]?.stringValue == "taskbridge")
            #expect(afterCut["scripts"]?.intValue == 1, "only the page's own script element")
            let source = try await wd.source()
            let token = try s.token
            #expect(!source.contains(s.h.tm.apiKey) && !source.contains(token))

            try await wd.screenshot(to: Self.artifacts + "/dashboard-1280.png")

            // Without the token the retry is refused, by the page and by the server.
            let retryButton = "#quarantine-rows tr[data-id=\"\(s.badID)\"] button.retry"
            try await wd.click(retryButton)
            #expect(try await Self.messageContains(wd, "Read-only"))
            try await wd.type("#token", "not-the-token")
            try await wd.click("#token-apply")
            try await wd.click(retryButton)
            #expect(try await Self.messageContains(wd, "HTTP 401"))
            #expect(try s.h.scalar("SELECT COUNT(*) FROM _taskbridge_quarantine WHERE legacy_id = ?", [s.badID]) == 1)

            // The operator fixes the row, then retries it from the page.
            try producer.execute("UPDATE task_queue SET run_after_utc = NULL WHERE id = ?", [s.badID])
            try await wd.type("#token", token)
            try await wd.click("#token-apply")
            try await wd.click(retryButton)
            #expect(try await Self.messageContains(wd, "released for another attempt"))
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    try s.h.scalar(
                        "SELECT COUNT(*) FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'sent'", [s.badID])
                        == 1
                }, "the retried row is forwarded")
            #expect(
                try await eventually(timeout: .seconds(20), interval: .milliseconds(200)) {
                    try await wd.execute(
                        "return document.querySelector('#quarantine-rows tr[data-id=\"\(s.badID)\"]') === null"
                    ).boolValue == true
                }, "and leaves the page's quarantine")
            let audited = try s.h.scalar(
                "SELECT COUNT(*) FROM _taskbridge_audit WHERE action = 'quarantine-retry' AND actor = 'dashboard'")
            #expect(audited == 1)
            #expect(try await eventually(timeout: .seconds(30)) { try await Self.pageMatchesStatus(wd, s) })

            // Readable on a phone: nothing wider than the screen but scrolling tables.
            try await wd.setViewport(width: 390, height: 844, mobile: true)
            #expect(
                try await eventually(timeout: .seconds(10), interval: .milliseconds(200)) {
                    try await wd.execute(
                        "return document.documentElement.scrollWidth <= window.innerWidth"
                    ).boolValue == true
                }, "no horizontal scrolling of the page at 390 px")
            try await wd.screenshot(to: Self.artifacts + "/dashboard-390.png")
        }
    }

    /// A type in shadow on the page: its figures equal the report's, the
    /// example diff shows both values side by side as text (a value carrying
    /// markup never runs), and the page refuses forward below the gate.
    @Test(.enabled(if: enabled)) func aTypeInShadowShowsItsComparison() async throws {
        try #require(WebDriver.available, "CI must install chromium and chromium-driver (see .ci/run)")
        let m = ShadowTests.mapping()
        try await BridgeHarness.with(types: [m], startEngine: false) { h in
            let tokenPath = h.tm.directory.path("admin.token")
            let bridge = try BridgeProcess(
                harness: h, metrics: true, extraBridge: ["admin_token_file = \(PHPJSON.encode(.string(tokenPath)))"])
            try bridge.start()
            defer { Task { await bridge.kill() } }
            _ = try await bridge.waitForHealth()
            #expect(try await CLIRun.run(["cutover", m.legacyType, "shadow", "--reason", "compare"], harness: h).status == 0)
            let log = ExecutionLog()
            let stop = Deadline(seconds: 3600)
            // The legacy worker writes markup into the field that differs: it must show as text.
            let legacy = Task {
                let worker = try LegacyWorker(path: h.legacyPath, workerID: "legacy-0")
                defer { try? worker.close() }
                try await worker.run(until: stop, log: log) { c in
                    let n = c.parameters.flatMap { try? JSONParser.parse($0) }.map(ShadowTests.n) ?? -1
                    let score = n % 4 == 0 ? PHPJSON.encode(.string(plantedScript)) : "\(n * 2)"
                    return (true, #"{"n": \#(n), "score": \#(score), "fetched_at": "legacy"}"#, nil)
                }
            }
            defer { legacy.cancel() }
            let typeID = try await h.typeID(m.name)
            let api = Task {
                try await APIWorker(
                    client: h.tm.client, workerID: "api-0", typeIDs: [typeID], compute: ShadowTests.taskManagerResult
                ).run(until: stop, log: log)
            }
            defer { api.cancel() }
            try h.producer().insertBatch(type: m.legacyType, parameters: (0..<40).map { #"{"n": \#($0)}"# })
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try h.scalar("SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'compared'") == 40
                })
            let wd = try await WebDriver.start()
            defer { Task { await wd.quit() } }
            try await wd.navigate("http://127.0.0.1:\(bridge.metricsPort!)/")
            let card = "[data-type=\"\(m.legacyType)\"]"
            #expect(
                try await eventually(timeout: .seconds(20), interval: .milliseconds(200)) {
                    try await wd.execute("return document.querySelector('\(card) [data-role=shadow]')?.dataset.compared || ''")
                        .stringValue == "40"
                }, "the page shows the 40 comparisons")
            let facts = try await wd.execute("return document.querySelector('\(card) [data-role=shadow-facts]').textContent")
            // n divisible by 4 among 0..<40: 10 mismatches, 30 matches.
            #expect(facts.stringValue?.contains("30 matched, 10 mismatched") == true, "\(facts)")
            let field = try await wd.execute("return document.querySelector('\(card) [data-path]').dataset.path")
            #expect(field.stringValue == "score")
            let shown = try await wd.execute("return document.querySelector('\(card) pre[data-side=legacy]').textContent")
            #expect(shown.stringValue?.contains(plantedScript) == true, "\(shown)")
            let state = try await Self.pageState(wd)
            #expect(state["pwned"]?.isNull == true && state["scripts"]?.intValue == 1)
            #expect(state["types"]?[m.legacyType]?["stage"]?.stringValue == "shadow")
            try await wd.screenshot(to: Self.artifacts + "/dashboard-shadow-1280.png")

            // The page follows the gate: forward is refused below it.
            let token = try String(contentsOfFile: tokenPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try await wd.type("#token", token)
            try await wd.click("#token-apply")
            _ = try await wd.execute(
                "const s = document.querySelector('\(card) [data-role=mode]'); s.value = 'forward';"
                    + "s.dispatchEvent(new Event('change'));")
            try await wd.type("\(card) [data-role=reason]", "try forward")
            try await wd.click("\(card) [data-role=cutover]")
            #expect(try await Self.messageContains(wd, "shadow gate"))
            #expect(try h.scalarText("SELECT mode FROM _taskbridge_mode WHERE task_type = ?", [m.legacyType]) == "shadow")
        }
    }

    static func messageContains(_ wd: WebDriver, _ text: String) async throws -> Bool {
        try await eventually(timeout: .seconds(20), interval: .milliseconds(100)) {
            try await wd.execute("return document.getElementById('message').textContent").stringValue?.contains(text)
                == true
        }
    }
}
