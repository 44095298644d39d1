import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskManagerModel

/// `taskbridge status`: per type, where the file and the database stand.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show per-type mode and counters.")

    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false
    @Flag(help: "Redraw every 2 seconds in place until interrupted (a terminal view).") var watch = false

    /// One queue: the model as it always was. Several (no `--queue` on a
    /// file that names several): each queue's model under `queues`, and the
    /// sums under `totals`.
    func run() async throws {
        let configs = try options.loadAll()
        var stores: [(BridgeConfiguration, LegacyQueueStore)] = []
        for c in configs { stores.append((c, try CLI.openExisting(c))) }
        defer { for (_, s) in stores { try? s.close() } }
        repeat {
            var views: [(BridgeConfiguration, StatusModel.View)] = []
            for (c, s) in stores { views.append((c, try await StatusModel.build(config: c, store: s))) }
            if json {
                if views.count == 1 {
                    CLI.printJSON(views[0].1.json)
                } else {
                    var totals = StatusModel.Totals()
                    var list: [JSONValue] = []
                    for (_, v) in views {
                        totals.add(v.json)
                        list.append(v.json)
                    }
                    CLI.printJSON(["queues": .array(list), "totals": totals.json])
                }
            } else {
                // Home and clear, then the table: redrawn in place, as `watch` does.
                if watch { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
                var totals = StatusModel.Totals()
                for (i, (c, view)) in views.enumerated() {
                    if views.count > 1 { print((i > 0 ? "\n" : "") + "queue \(c.queue)") }
                    print(view.header)
                    print(CLI.table(StatusModel.columns, view.table))
                    totals.add(view.json)
                }
                if views.count > 1 {
                    print(
                        "\ntotal over \(views.count) queues: \(totals.queued) queued, \(totals.inFlight) in flight, "
                            + "\(totals.forwarded) forwarded, \(totals.mirrored) mirrored, \(totals.quarantined) "
                            + "quarantined, \(totals.executedByLegacy) executed by legacy workers while forwarded")
                }
                if watch { print("\n\(LegacyTimestamp.format(Date()))  (every 2 s; Ctrl-C to stop)") }
            }
            if watch { try await Task.sleep(for: .seconds(2)) }
        } while watch
    }
}
