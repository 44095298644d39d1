import Foundation

/// `taskbridge run` as a child process against a harness's legacy file and
/// (proxied) TaskManager.
public final class BridgeProcess: Sendable {
    public let child: AsyncProcess
    public let configPath: String
    /// The `/metrics` and `/health` port, when metrics are on.
    public let metricsPort: Int?

    /// `metrics`: listen on a free port (the default operators run with).
    public init(
        harness h: BridgeHarness, metrics: Bool = false, extraBridge: [String] = [],
        environment: [String: String] = [:],
        url: String? = nil
    ) throws {
        let port = metrics ? try FreePort.find() : nil
        let listen = port.map { #"metrics_listen = "127.0.0.1:\#($0)""# } ?? #"metrics_listen = "off""#
        // A key in `extraBridge` replaces the test default of the same name.
        func key(_ line: String) -> Substring { line.prefix { $0 != "=" && $0 != " " } }
        let defaults = [listen, "poll_interval_ms = 10", "mirror_interval_ms = 50"].filter { d in
            !extraBridge.contains { key($0) == key(d) }
        }
        configPath = try h.writeConfig(url: url ?? h.config.taskManager.url, bridgeLines: defaults + extraBridge)
        metricsPort = port
        var env = h.cliEnvironment
        env["LOG_LEVEL"] = "info"
        for (k, v) in environment { env[k] = v }
        child = AsyncProcess(
            executable: try TaskbridgeBinary.url(), arguments: ["run", "--config", configPath], environment: env)
    }

    public var stderrText: String { child.stderr }
    public var isRunning: Bool { child.isRunning }

    public func start() throws { try child.start() }
    public func kill() async { await child.kill() }
    public func terminate() { child.signal(SIGTERM) }

    public func waitForExit(timeout: Duration) async throws -> Int32? {
        guard try await eventually(timeout: timeout, { !self.child.isRunning }) else { return nil }
        return await child.wait()
    }

    public func metrics() async throws -> String {
        guard let metricsPort else { throw HarnessError("metrics are off for this bridge") }
        return try await HTTPFetch.text("http://127.0.0.1:\(metricsPort)/metrics")
    }

    public func health() async throws -> String {
        guard let metricsPort else { throw HarnessError("metrics are off for this bridge") }
        return try await HTTPFetch.text("http://127.0.0.1:\(metricsPort)/health")
    }

    /// Until `/health` answers (200 or 503) and says which.
    public func waitForHealth(timeout: Duration = .seconds(30)) async throws -> String {
        var text = ""
        let up = try await eventually(timeout: timeout) {
            text = (try? await self.health()) ?? ""
            return text.contains(#""status":"#) || !self.child.isRunning
        }
        guard up, child.isRunning else { throw HarnessError("bridge did not come up: \(stderrText.suffix(3000))") }
        return text
    }
}

/// Runs one `taskbridge` command to completion against a harness.
public enum CLIRun {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(
        _ args: [String], harness h: BridgeHarness, config: String? = nil,
        environment: [String: String] = [:]
    ) async throws -> Result {
        let conf = try config ?? h.writeConfig(name: "cli.conf", url: h.tm.baseURL)
        var env = h.cliEnvironment
        for (k, v) in environment { env[k] = v }
        let r = try await AsyncProcess.run(try TaskbridgeBinary.url(), args + ["--config", conf], environment: env)
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }
}

/// The Prometheus text exposition format (version 0.0.4), parsed strictly
/// enough to fail on what a scraper would refuse, and the label names each
/// family was emitted with.
public struct PrometheusText: Sendable {
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public var samples: [Sample] = []

    public init(_ text: String) throws {
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let line = String(raw)
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                guard parts.count >= 3, ["HELP", "TYPE"].contains(parts[1]) else { continue }
                if parts[1] == "TYPE" {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else {
                        throw HarnessError("line \(n + 1): bad TYPE: \(line)")
                    }
                }
                continue
            }
            samples.append(try Self.sample(line, number: n + 1))
        }
    }

    static func sample(_ line: String, number: Int) throws -> Sample {
        var rest = Substring(line)
        let name = String(rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" })
        guard !name.isEmpty, !(name.first!.isNumber) else {
            throw HarnessError("line \(number): bad metric name: \(line)")
        }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let key = String(rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                guard !key.isEmpty else { throw HarnessError("line \(number): bad label name: \(line)") }
                rest = rest.dropFirst(key.count)
                guard rest.hasPrefix("=\"") else { throw HarnessError("line \(number): expected =\" in \(line)") }
                rest = rest.dropFirst(2)
                var value = ""
                while let c = rest.first, c != "\"" {
                    if c == "\\" {
                        rest = rest.dropFirst()
                        guard let e = rest.first else { break }
                        value.append(e == "n" ? "\n" : e)
                    } else {
                        value.append(c)
                    }
                    rest = rest.dropFirst()
                }
                guard rest.first == "\"" else {
                    throw HarnessError("line \(number): unterminated label value: \(line)")
                }
                rest = rest.dropFirst()
                if labels.updateValue(value, forKey: key) != nil {
                    throw HarnessError("line \(number): label \(key) twice")
                }
                if rest.first == "," { rest = rest.dropFirst() }
            }
            rest = rest.dropFirst()
        }
        let fields = rest.split(separator: " ")
        guard (1...2).contains(fields.count), let value = Double(fields[0]) ?? (fields[0] == "+Inf" ? .infinity : nil)
        else {
            throw HarnessError("line \(number): bad sample value: \(line)")
        }
        return Sample(name: name, labels: labels, value: value)
    }

    /// Families (by sample name) emitted with more than one set of label names.
    public var inconsistentFamilies: [String] {
        var sets: [String: Set<[String]>] = [:]
        for s in samples { sets[s.name, default: []].insert(s.labels.keys.sorted()) }
        return sets.filter { $0.value.count > 1 }.map(\.key).sorted()
    }

    public func sum(_ name: String, where match: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && match.allSatisfy { k, v in s.labels[k] == v } }.reduce(0) {
            $0 + $1.value
        }
    }

    public func has(_ name: String) -> Bool { samples.contains { $0.name == name } }
}
