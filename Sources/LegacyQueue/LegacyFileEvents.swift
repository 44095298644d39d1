#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// The kernel's word that the legacy file may have changed: inotify on the
/// directory that holds it, filtered to the database, its `-wal` and its
/// `-journal` (a commit appends to the WAL or rewrites the file and its
/// journal; `-shm` is written through a mapping, which inotify never sees).
/// The directory, not the file, is watched so that a WAL created after start
/// and a file put at the path by `mv` (a restore) are seen too.
///
/// A notification is only a hint: `PRAGMA data_version` stays the truth of
/// whether anything committed, and the caller keeps polling at its idle
/// interval where notifications do not arrive (another platform, a network
/// file system, a full inotify queue). Marmot and sqlite-cdc watch the same
/// files the same way.
public final class LegacyFileEvents: @unchecked Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Something was written; `renamed`: a file was created or moved at
        /// the database's own name (a restore by `mv` or `cp`).
        case changed(renamed: Bool)
        case timedOut
        case interrupted
    }

    #if canImport(Glibc)
        private let fd: Int32
        private let wakeRead: Int32
        private let wakeWrite: Int32
        private let names: Set<String>
        private let databaseName: String
        private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    #endif

    /// Nil where the kernel offers no notifications (not Linux, no inotify
    /// instance left): the caller polls instead.
    public init?(path: String) {
        #if canImport(Glibc)
            let url = URL(fileURLWithPath: path)
            let directory = url.deletingLastPathComponent().path
            databaseName = url.lastPathComponent
            names = [databaseName, databaseName + "-wal", databaseName + "-journal"]
            let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else { return nil }
            let mask = UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE)
            guard inotify_add_watch(fd, directory, mask) >= 0 else {
                close(fd)
                return nil
            }
            var pipeFDs: [Int32] = [0, 0]
            guard pipe(&pipeFDs) == 0 else {
                close(fd)
                return nil
            }
            for end in pipeFDs {
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            }
            self.fd = fd
            wakeRead = pipeFDs[0]
            wakeWrite = pipeFDs[1]
        #else
            return nil
        #endif
    }

    deinit {
        #if canImport(Glibc)
            close(fd)
            close(wakeRead)
            close(wakeWrite)
        #endif
    }

    /// Blocks the calling thread (never a cooperative one) until an event
    /// for one of the file's names, `interrupt()`, or `timeout` seconds.
    /// Every event already queued is consumed: a burst of commits is one
    /// wake-up. Only one thread may wait at a time.
    public func wait(timeout: Double) -> Outcome {
        #if canImport(Glibc)
            let deadline = Date().timeIntervalSince1970 + timeout
            while true {
                let left = deadline - Date().timeIntervalSince1970
                if left <= 0 { return .timedOut }
                var fds = [
                    pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                ]
                let ready = poll(&fds, 2, Int32(min(Double(Int32.max), (left * 1000).rounded(.up))))
                if ready < 0 {
                    if errno == EINTR { continue }
                    return .timedOut
                }
                if ready == 0 { return .timedOut }
                if fds[1].revents != 0 {
                    var byte: UInt8 = 0
                    while read(wakeRead, &byte, 1) > 0 {}
                    return .interrupted
                }
                if let outcome = drain() { return outcome }
            }
        #else
            return .timedOut
        #endif
    }

    /// Ends a `wait` at once (at stop).
    public func interrupt() {
        #if canImport(Glibc)
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        #endif
    }

    #if canImport(Glibc)
        /// Reads every queued event; nil if none concerned the file.
        private func drain() -> Outcome? {
            var relevant = false
            var renamed = false
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                buffer.withUnsafeBytes { raw in
                    var offset = 0
                    let header = MemoryLayout<inotify_event>.size
                    while offset + header <= n {
                        let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                        let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                        if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                            // Events were dropped: anything may have happened.
                            relevant = true
                            renamed = true
                        } else if length > 0 {
                            let bytes = raw[(offset + header)..<(offset + header + length)].prefix { $0 != 0 }
                            let name = String(decoding: bytes, as: UTF8.self)
                            if names.contains(name) {
                                relevant = true
                                if name == databaseName && mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 {
                                    renamed = true
                                }
                            }
                        }
                        offset += header + length
                    }
                }
            }
            return relevant ? .changed(renamed: renamed) : nil
        }
    #endif
}
