import Metrics

/// A metric with one fixed label set. swift-prometheus stops the process when
/// one name is used with two label sets (issue 7, item 1: a dry-run counted
/// with labels on one path and without on another), so no metric is built by
/// hand: each is declared once in `BridgeMetrics`, and every emission checks
/// that it is given exactly its labels. Guarded by `MetricCatalogueTests` and
/// by the CLI tests that parse a real `/metrics`.
public struct MetricDeclaration: Sendable {
    public let name: String
    public let labels: [String]
    public let help: String

    func dimensions(_ values: [String]) -> [(String, String)] {
        precondition(values.count == labels.count, "\(name) takes the labels \(labels), got \(values.count) value(s)")
        return Array(zip(labels, values))
    }
}

public struct CounterMetric: Sendable {
    public let declaration: MetricDeclaration
    public var name: String { declaration.name }
    public var help: String { declaration.help }

    /// Every metric carries `queue` first: one process bridges many queues.
    init(_ name: String, labels: [String] = [], _ help: String) {
        declaration = MetricDeclaration(name: name, labels: ["queue"] + labels, help: help)
    }

    public func increment(_ values: String..., by amount: Int = 1) {
        let dimensions = declaration.dimensions(values)
        guard amount > 0 else { return }
        Counter(label: name, dimensions: dimensions).increment(by: amount)
    }
}

public struct GaugeMetric: Sendable {
    public let declaration: MetricDeclaration
    public var name: String { declaration.name }
    public var help: String { declaration.help }

    /// Every metric carries `queue` first: one process bridges many queues.
    init(_ name: String, labels: [String] = [], _ help: String) {
        declaration = MetricDeclaration(name: name, labels: ["queue"] + labels, help: help)
    }

    public func set(_ value: Double, _ values: String...) {
        Gauge(label: name, dimensions: declaration.dimensions(values)).record(value)
    }
}

/// Every metric the bridge emits, with its meaning (the README's list is this).
/// Names follow Prometheus conventions: base units, `_total` on counters.
public enum BridgeMetrics {
    public static let captured = CounterMetric(
        "taskbridge_captured_total", labels: ["type"], "rows captured with a write-ahead intent, by legacy type")
    public static let quarantined = CounterMetric(
        "taskbridge_quarantined_total", labels: ["type", "reason"], "rows put in quarantine, by legacy type and reason")
    public static let dryRun = CounterMetric(
        "taskbridge_dry_run_total", labels: ["type", "verdict"], "dry-run verdicts (would-forward, would-reject)")
    public static let forwarded = CounterMetric(
        "taskbridge_forwarded_total", "rows whose TaskManager task was created or found")
    public static let collapsed = CounterMetric(
        "taskbridge_collapsed_total", "forwarded rows that landed on a task that already existed")
    public static let mirrored = CounterMetric(
        "taskbridge_mirrored_total", "rows given their TaskManager terminal status")
    public static let apiErrors = CounterMetric(
        "taskbridge_api_errors_total", labels: ["kind"], "failed TaskManager requests, by kind")
    public static let loopErrors = CounterMetric(
        "taskbridge_loop_errors_total", labels: ["loop"], "engine loops that failed and were restarted")
    public static let retiredRows = CounterMetric(
        "taskbridge_retired_rows_total", labels: ["type"],
        "rows that arrived for a retired type (forwarded, with a warning)")
    public static let objectsRepaired = CounterMetric(
        "taskbridge_objects_repaired_total",
        "times the _taskbridge_* objects were found dropped or altered and reinstalled")
    public static let parityFindings = CounterMetric(
        "taskbridge_parity_findings_total", labels: ["class"], "live parity sample findings, by class")
    public static let paritySampled = CounterMetric(
        "taskbridge_parity_sampled_total", "rows compared by the live parity sample")
    public static let lockWait = GaugeMetric(
        "taskbridge_legacy_lock_wait_seconds",
        "how long the bridge has been waiting for another process's write lock (0: none)")

    public static let writeFailing = GaugeMetric(
        "taskbridge_legacy_write_failing",
        "1 while writes to the legacy file fail for a reason outside (a full disk, an I/O error), else 0")

    public static let forwardPercent = GaugeMetric(
        "taskbridge_forward_percent", labels: ["type"],
        "share of new rows the bridge takes, by legacy type: 100 in forward, the canary share, 0 otherwise")
    public static let rows = GaugeMetric(
        "taskbridge_rows", labels: ["type", "side"],
        "rows of a type by who executes them: side=bridge (forwarded) or legacy (left to legacy workers)")

    public static let reverseInserted = CounterMetric(
        "taskbridge_reverse_inserted_total", labels: ["type"],
        "reverse: TaskManager tasks claimed and inserted as legacy rows, by legacy type")
    public static let reverseRecognised = CounterMetric(
        "taskbridge_reverse_recognised_total", labels: ["type"],
        "reverse: claims of a task the bridge already held a row for (an expired lease), nothing inserted")
    public static let reverseCompleted = CounterMetric(
        "taskbridge_reverse_completed_total", labels: ["type", "outcome"],
        "reverse: legacy outcomes TaskManager took (outcome=completed or failed)")
    public static let reverseConflicts = CounterMetric(
        "taskbridge_reverse_conflicts_total", labels: ["type", "reason"],
        "reverse: completions TaskManager refused for good (reason=reclaimed: 403, or gone: 404); never retried")

    public static let fileReplaced = CounterMetric(
        "taskbridge_legacy_file_replaced_total",
        "times another file was found at the legacy database's path (a restore) and reopened as a new generation")

    public static let legacyWakeups = CounterMetric(
        "taskbridge_legacy_wakeups_total", labels: ["cause"],
        "looks at the legacy file's PRAGMA data_version, by what woke the watcher "
            + "(cause=notification: the kernel said it was written; timer: the idle interval or the fallback poll)")

    public static let shadow = CounterMetric(
        "taskbridge_shadow_total", labels: ["type", "outcome"],
        "shadow: copies created (outcome=created) and comparisons recorded (outcome=matched, value, outcome, "
            + "legacy_failed_only, taskmanager_failed_only, expired)")

    public static let counters = [
        captured, quarantined, dryRun, forwarded, collapsed, mirrored, apiErrors, loopErrors, retiredRows,
        objectsRepaired, fileReplaced, legacyWakeups,
        parityFindings, paritySampled, reverseInserted, reverseRecognised, reverseCompleted, reverseConflicts, shadow,
    ]
    public static let gauges = [lockWait, writeFailing, forwardPercent, rows]
}
