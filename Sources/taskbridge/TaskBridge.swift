import ArgumentParser
import Foundation
import LegacyQueue

/// `taskbridge`: a dual-write bridge between a legacy SQLite task queue and
/// TaskManager. One file per subcommand.
struct TaskBridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskbridge",
        abstract: "Bridge a legacy SQLite task_queue and the TaskManager API during a staged migration.",
        discussion: "Exit codes: 0 ok, 1 a check found problems, 2 usage or configuration error, 3 runtime failure.",
        subcommands: [
            RunCommand.self, DemoCommand.self, InstallCommand.self, UninstallCommand.self, StatusCommand.self,
            CutoverCommand.self, QuarantineCommand.self, DoctorCommand.self, VerifyCommand.self,
            RetireCheckCommand.self, ShadowCommand.self,
            ExportCommand.self, ServeCommand.self,
        ]
    )
}

@main
enum Main {
    static func main() async {
        LineLogHandler.bootstrap()
        do {
            var command = try TaskBridge.parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("taskbridge: \(e.message)\n".utf8))
            exit(e.code.rawValue)
        } catch let e as LegacyQueueError {
            // A locked file, a missing one, a schema refused: never a usage error here.
            FileHandle.standardError.write(Data("taskbridge: \(e.description)\n".utf8))
            exit(ExitStatus.runtime.rawValue)
        } catch {
            let code = TaskBridge.exitCode(for: error)
            let message = TaskBridge.fullMessage(for: error)
            if !message.isEmpty {
                (code == .success ? FileHandle.standardOutput : FileHandle.standardError).write(
                    Data((message + "\n").utf8))
            }
            // ArgumentParser says 64 for usage errors; the contract says 2.
            exit(code == .success ? 0 : (code == .validationFailure ? ExitStatus.usage.rawValue : code.rawValue))
        }
    }
}
