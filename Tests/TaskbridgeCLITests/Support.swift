import BridgeConfig
import Foundation
import TaskBridgeTesting
import TaskManagerModel
import Testing

let channel = TypeMapping(
    legacyType: "youtube_channel_scrape", name: "PrismQ.YouTube.Channel.Scrape", mode: .off,
    paramSchema: ["type": "object", "properties": ["channel_url": ["type": "string"]], "required": ["channel_url"]])

extension BridgeProcess {
    /// `run` on the harness's file with metrics on, up and serving, its
    /// types registered (the proxy, when the harness has one, passes).
    static func started(_ h: BridgeHarness, type: TypeMapping) async throws -> BridgeProcess {
        let bridge = try BridgeProcess(harness: h, metrics: true)
        try bridge.start()
        _ = try await bridge.waitForHealth()
        _ = try await h.typeID(type.name)
        return bridge
    }

    /// What every runbook step checks: the process is alive, `/metrics`
    /// parses as Prometheus text with one label set per family, and `/health`
    /// answers.
    func expectServing(_ step: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> PrometheusText
    {
        guard isRunning else {
            throw HarnessError(
                "\(step): taskbridge run died (status \(await child.wait())): \(stderrText.suffix(3000))")
        }
        let text = try await metrics()
        let parsed = try PrometheusText(text)
        #expect(
            parsed.inconsistentFamilies.isEmpty,
            "\(step): families with two label sets: \(parsed.inconsistentFamilies)",
            sourceLocation: sourceLocation)
        let health = try await self.health()
        #expect(health.contains(#""status":"#), "\(step): /health said \(health)", sourceLocation: sourceLocation)
        return parsed
    }
}

func json(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }
