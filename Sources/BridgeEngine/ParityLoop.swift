import AsyncAlgorithms
import Foundation
import LegacyQueue
import TaskManagerClient

/// Live parity: a small random sample of forwarded rows compared with their
/// tasks, so drift shows in `status` and metrics before anyone runs verify.
extension BridgeEngine {
    func parityLoop() async throws {
        let interval = Duration.milliseconds(Int64(config.bridge.paritySampleIntervalSeconds * 1000))
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous) {
            if isStopping { return }
            await attempt("parity") { try await sampleParity() }
        }
    }

    func sampleParity(size: Int = 20) async throws {
        let sample = try await store.paritySample(size: size)
        guard !sample.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        var results: [(Int64, String, String?, String?)] = []
        for item in sample {
            guard let l = item.ledger, let id = l.tmTaskID else { continue }
            do {
                let task = try await client.getTask(id: id)
                let settled =
                    (LegacyTimestamp.parse(l.updatedAt ?? l.claimedAt).map { now - $0.timeIntervalSince1970 } ?? 0) > 60
                let f = ParityClassifier.compare(
                    row: item.row, mapping: config.mapping(forLegacyType: item.row.taskType), ledger: l,
                    task: task, settled: settled
                ).first { $0.kind.breaksParity }
                results.append((item.row.id, item.row.taskType, f?.kind.rawValue, f?.detail))
                if let f { BridgeMetrics.parityFindings.increment(queueLabel, f.kind.rawValue) }
            } catch .notFound {
                results.append(
                    (item.row.id, item.row.taskType, ParityClass.missingInTaskManager.rawValue, "task \(id) not found"))
                BridgeMetrics.parityFindings.increment(queueLabel, ParityClass.missingInTaskManager.rawValue)
            } catch {
                await noteAPIError(error, context: "parity sample")
            }
        }
        BridgeMetrics.paritySampled.increment(queueLabel, by: results.count)
        try await store.recordParity(results)
    }
}
