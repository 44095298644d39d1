import Foundation
import GRDB
import Synchronization
import SQLiteText
import TaskManagerModel

public enum LegacyQueueError: Error, CustomStringConvertible, Sendable {
    case missingDatabase(String)
    case schema(LegacySchema.DetectionError)
    case objects(String)
    /// Another process kept the write lock through the busy timeout.
    case locked(path: String, seconds: Double)
    /// Another file was put at the path; the store must be reopened first.
    case fileReplaced(path: String, now: FileIdentity)
    /// Another file is at the path, but the replaced file's WAL or index is
    /// still beside it: opening the new file now would read the old file's
    /// pages into it.
    case restoreIncomplete(path: String, leftovers: [String])

    public var description: String {
        switch self {
        case .missingDatabase(let p):
            return
                """
                legacy database \(p) does not exist (set [legacy] create_if_missing = true to create an empty worker \
                queue)
                """
        case .schema(let e): return e.description
        case .objects(let m): return m
        case .fileReplaced(let p, let now):
            return "another file (\(now)) was put at \(p); writes wait until the bridge has reopened it"
        case .restoreIncomplete(let p, let leftovers):
            return
                "another file was put at \(p), but the replaced file's \(leftovers.joined(separator: " and ")) "
                + "are still beside it; the bridge opens the new file once they are removed (a connection opened "
                + "next to them would read the replaced file's pages into it)"
        case .locked(let p, let seconds):
            return
                "the legacy file \(p) is locked by another process (no write lock within \(Int(seconds.rounded())) s); "
                + "a legacy worker stuck in a transaction holds it until it exits"
        }
    }
}

/// The legacy SQLite file, accessed the way a legacy worker would: one
/// connection, `busy_timeout` >= 5000, `BEGIN IMMEDIATE` for every write,
/// short transactions, and no read transaction held between calls.
///
/// Every bridge write transaction that touches the legacy table first sets
/// `_taskbridge_echo.active` and clears it before commit, so its own writes
/// never come back as change rows.
public final class LegacyQueueStore: Sendable {
    public let path: String
    public let schema: LegacySchema
    public let objects: BridgeObjects
    /// The file's connections, replaced together by `reopen()` when another
    /// file was put at `path` (a restore).
    struct Connections: Sendable {
        /// WAL pool: short reads run beside the writer instead of queueing
        /// behind it (the mirror's scans never delay capture).
        var pool: DatabasePool
        /// A second connection only for `PRAGMA data_version`: it must not share
        /// the writer's connection, whose own commits do not bump the counter.
        var watcher: DatabaseQueue
        /// The file they were opened on (device and inode).
        var identity: FileIdentity?
        /// Its WAL and index as they were once open: while the bridge holds
        /// the file, nobody deletes them, so the same identities found beside
        /// another file at the path mean a restore left them behind.
        var sidecars: Sidecars
    }
    let connections: Mutex<Connections>
    /// The `schema_version` at which the table's continuity was last checked
    /// inside a capture write (see `continuityHolds`).
    let verifiedSchemaVersion = Atomic<Int64>(-1)
    var pool: DatabasePool { connections.withLock { $0.pool } }
    var watcher: DatabaseQueue { connections.withLock { $0.watcher } }
    let busyTimeoutMilliseconds: Int
    /// Set while another file is at the path but the replaced file's WAL or
    /// index is still beside it (see `reopen()`).
    let waitingForRestore = Atomic<Bool>(false)
    public var restoreIncomplete: Bool { waitingForRestore.load(ordering: .relaxed) }
    /// Waits for another process's write lock (see `LockWatch`).
    public let lockWatch = LockWatch()
    /// Writes failing for good until something outside changes (see `WriteFailureWatch`).
    public let writeFailures = WriteFailureWatch()
    /// Where async reads and writes run (see `BlockingThreads`).
    let readThreads = BlockingThreads(name: "taskbridge-sqlite-read", count: 2)
    let writeThread = BlockingThreads(name: "taskbridge-sqlite-write", count: 1)
    var table: String { "\"\(schema.table)\"" }
    var bridgeID: String { objects.bridgeID }

    public struct OpenResult: Sendable {
        public var store: LegacyQueueStore
        public var created: Bool
    }

    public static func open(
        path: String, table: String, bridgeID: String, createIfMissing: Bool, busyTimeoutMilliseconds: Int = 5000
    )
        throws -> OpenResult
    {
        var created = false
        if !FileManager.default.fileExists(atPath: path) {
            guard createIfMissing else { throw LegacyQueueError.missingDatabase(path) }
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
            created = true
        }
        let identity = FileIdentity(path: path)
        let (pool, watcher) = try openConnections(
            path: path, expected: identity, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        if created {
            try pool.write { db in
                try db.execute(sql: LegacySchema.variantADDL(table: table))
            }
        }
        let schema = try detectSchema(pool, table: table)
        let store = LegacyQueueStore(
            path: path, schema: schema, objects: BridgeObjects(table: table, bridgeID: bridgeID),
            connections: Connections(
                pool: pool, watcher: watcher, identity: identity ?? FileIdentity(path: path),
                sidecars: Sidecars(of: path)),
            busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        return OpenResult(store: store, created: created)
    }

    /// Every connection, the pool's later readers included, first checks that
    /// the file it opened is `expected` (nil: the one the first creates), before
    /// anything is read: SQLite finds the WAL and index by the path, so a
    /// reader opened on a restored copy while the replaced file's WAL and
    /// index are still beside it reads the copy through the old WAL (its
    /// checkpoint would write those pages into the copy) and leaves the old
    /// index to every later connection of this process to the copy
    /// (`FleetTests.fileReplacedUnderARunningBridge` caught one under load).
    /// The check after the file is open and before its first read is exact:
    /// a rename after the open leaves the connection on the file it expected.
    static func openConnections(path: String, expected: FileIdentity?, busyTimeoutMilliseconds: Int) throws
        -> (DatabasePool, DatabaseQueue)
    {
        // A file created by the first connection is the one expected after.
        let expected = Mutex(expected)
        let sameFile: @Sendable (Database) throws -> Void = { _ in
            guard let now = FileIdentity(path: path) else { throw LegacyQueueError.missingDatabase(path) }
            let was = expected.withLock { e in
                if e == nil { e = now }
                return e
            }
            guard now == was else { throw LegacyQueueError.fileReplaced(path: path, now: now) }
        }
        var config = Configuration()
        config.prepareDatabase(sameFile)
        config.busyMode = .callback(busyHandler(milliseconds: max(busyTimeoutMilliseconds, 5000)))
        config.label = "legacy"
        // Legacy workers put the file in WAL on every connect; a hand-made
        // A-min file may still use a rollback journal, where readers block
        // writers. The pool switches it to WAL, as a legacy worker would.
        let pool = try DatabasePool(path: path, configuration: config)
        var wconfig = Configuration()
        wconfig.prepareDatabase(sameFile)
        wconfig.readonly = true
        wconfig.busyMode = .callback(busyHandler(milliseconds: max(busyTimeoutMilliseconds, 5000)))
        wconfig.label = "legacy-watch"
        let watcher = try DatabaseQueue(path: path, configuration: wconfig)
        return (pool, watcher)
    }

    /// `busy_timeout`'s budget with short waits. SQLite's own handler sleeps
    /// 1, 2, 5, 10, ... up to 100 ms between tries: a producer committing 500
    /// times a second holds the write lock for a moment at a time, and a
    /// bridge write that lost one race slept through dozens of free moments
    /// (commit to sent p50 above 100 ms at 500 rows/s). Tries here wait 0.1 ms,
    /// doubling to 2 ms, until the budget is spent.
    static func busyHandler(milliseconds: Int) -> Database.BusyCallback {
        let budget = Double(milliseconds) / 1000
        return { tries in
            let pause = min(0.002, 0.0001 * Double(1 << min(tries, 5)))
            // Time spent so far, from the pauses: 0.1 + 0.2 + ... then 2 ms each.
            let ramp = (0..<min(tries, 5)).reduce(0.0) { $0 + 0.0001 * Double(1 << $1) }
            let spent = ramp + Double(max(0, tries - 5)) * 0.002
            guard spent < budget else { return false }
            usleep(UInt32(pause * 1_000_000))
            return true
        }
    }

    static func detectSchema(_ pool: DatabasePool, table: String) throws -> LegacySchema {
        try pool.read { db -> LegacySchema in
            let cols = try Row.fetchAll(
                db, sql: "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)", arguments: [table]
            ).map {
                LegacySchema.Column(
                    name: $0["name"], type: $0["type"] ?? "", notNull: ($0["notnull"] as Int? ?? 0) != 0,
                    primaryKey: ($0["pk"] as Int? ?? 0) != 0)
            }
            let sql = try String.fetchOne(
                db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table])
            do {
                return try LegacySchema.detect(table: table, columns: cols, createSQL: sql)
            } catch let e as LegacySchema.DetectionError {
                throw LegacyQueueError.schema(e)
            }
        }
    }

    init(
        path: String, schema: LegacySchema, objects: BridgeObjects, connections: Connections,
        busyTimeoutMilliseconds: Int
    ) {
        self.path = path
        self.schema = schema
        self.objects = objects
        self.connections = Mutex(connections)
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
    }

    deinit {
        readThreads.stop()
        writeThread.stop()
    }

    /// A read transaction on the store's read threads, for async callers.
    func asyncRead<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        return try await readThreads.run { try pool.read(body) }
    }

    public func close() throws {
        let c = connections.withLock { $0 }
        try c.pool.close()
        try c.watcher.close()
    }

    // MARK: - The file at the path

    /// Whether the file at `path` is still the one the connections were
    /// opened on: a `mv backup.db worker_queue.db` leaves them on the old,
    /// unlinked inode, where nobody writes any more. One `stat`: cheap
    /// enough for every poll. Nil when it is the same (or cannot be told:
    /// the path is missing for a moment during a copy).
    public func replacedFile() -> (was: FileIdentity, now: FileIdentity)? {
        guard let now = FileIdentity(path: path) else { return nil }
        let was = connections.withLock { $0.identity }
        guard let was, was != now else { return nil }
        return (was, now)
    }

    /// Opens the file now at `path` and makes its connections the store's.
    /// The old ones are retired, never closed: closing the last connection
    /// of an unlinked file checkpoints and deletes the WAL by its path, which
    /// the new file's writers now share. A file whose table is another
    /// schema is refused (the bridge cannot keep going on it unrestarted).
    ///
    /// The new file starts a new generation before any write of the store
    /// can reach it (its origin is new: ids the replaced file gave out after
    /// the copy was taken may come again). Returns it, or nil when the file
    /// has no bridge objects (install makes a fresh origin).
    @discardableResult
    public func reopen() throws -> (generation: Int64, archived: Int)? {
        guard let identity = FileIdentity(path: path) else { throw LegacyQueueError.missingDatabase(path) }
        let leftovers = Sidecars(of: path).shared(with: connections.withLock { $0.sidecars }, path: path)
        guard leftovers.isEmpty else {
            waitingForRestore.store(true, ordering: .relaxed)
            throw LegacyQueueError.restoreIncomplete(path: path, leftovers: leftovers)
        }
        let (pool, watcher) = try Self.openConnections(
            path: path, expected: identity, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        let fresh = try Self.detectSchema(pool, table: schema.table)
        guard fresh == schema else {
            throw LegacyQueueError.objects(
                "the file now at \(path) holds another task_queue schema (\(fresh.variant.rawValue), was "
                    + "\(schema.variant.rawValue)); restart taskbridge")
        }
        let t = table
        let generation = try pool.writeWithoutTransaction { db -> (generation: Int64, archived: Int)? in
            guard try db.tableExists(Ledger.table), try db.tableExists("_taskbridge_meta") else { return nil }
            var g: (generation: Int64, archived: Int)?
            try db.inTransaction(.immediate) {
                try db.execute(sql: "UPDATE _taskbridge_echo SET active = 1 WHERE id = 1")
                g = try Ledger.beginGeneration(db, legacyTable: t)
                try db.execute(sql: "UPDATE _taskbridge_echo SET active = 0 WHERE id = 1")
                return .commit
            }
            return g
        }
        let sidecars = Sidecars(of: path)
        let old = connections.withLock { c -> Connections in
            defer { c = Connections(pool: pool, watcher: watcher, identity: identity, sidecars: sidecars) }
            return c
        }
        Self.retired.withLock { $0.append(old) }
        waitingForRestore.store(false, ordering: .relaxed)
        return generation
    }

    /// Connections of replaced files, kept open until the process ends.
    static let retired = Mutex<[Connections]>([])

    /// A commit by any connection changes this value; polling it is the
    /// bridge's wake-up (cheap: no transaction, no page read).
    public func dataVersion() throws -> Int64 {
        try watcher.inDatabase { db in try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0 }
    }

    /// Inside a write that records decisions: if any DDL ran since the last
    /// check (`schema_version` moved: `QueueDatabase(path)` recreated the
    /// table, or the bridge reinstalled its triggers), check that the table
    /// is still the one the ledger was made for, and when it is not, begin
    /// the new generation in this very transaction. Intents are then never
    /// recorded for a recreated table with the old generation's origin,
    /// whichever loop gets there first (guarded by
    /// `FleetTests.recreatedTableGivesRepeatedIdsTheirOwnTasks`).
    func checkContinuity(_ db: Database) throws -> (generation: Int64, archived: Int)? {
        let version = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA schema_version")) ?? 0
        guard version != verifiedSchemaVersion.load(ordering: .relaxed) else { return nil }
        var began: (generation: Int64, archived: Int)?
        if try db.tableExists(Ledger.table),
            try Ledger.hasLostContinuity(db, legacyTable: table, tableName: schema.table)
        {
            began = try Ledger.beginGeneration(db, legacyTable: table)
        }
        verifiedSchemaVersion.store(version, ordering: .relaxed)
        return began
    }

    /// Bumped by any DDL (a dropped and recreated `task_queue`, a dropped
    /// trigger). Read only after `data_version` moved: DDL is a commit too.
    public func schemaVersion() throws -> Int64 {
        try watcher.inDatabase { db in try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA schema_version")) ?? 0 }
    }

    /// The high-water marks of what capture reads: the change log (every
    /// row the triggers announce), the audit trail (every mode change and
    /// quarantine retry) and the legacy table's own AUTOINCREMENT (inserts).
    /// The bridge's own capture and send writes move none of them.
    public struct CaptureMarks: Sendable, Equatable {
        public var changes: Int64 = 0
        public var audit: Int64 = 0
        public var table: Int64 = 0
    }

    /// Nil where they cannot be read (no bridge objects yet): the caller
    /// treats that as a change.
    public func captureMarks() -> CaptureMarks? {
        let table = schema.table
        return try? watcher.inDatabase { db in
            var marks = CaptureMarks()
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT name, seq FROM sqlite_sequence WHERE name IN (?, ?, ?)"),
                arguments: ["_taskbridge_changes", "_taskbridge_audit", table])
            for r in rows {
                let name: String = r[0]
                let seq: Int64 = r[1]
                switch name {
                case "_taskbridge_changes": marks.changes = seq
                case "_taskbridge_audit": marks.audit = seq
                default: marks.table = seq
                }
            }
            return marks
        }
    }

    /// `BEGIN IMMEDIATE` write, with echo suppression around it.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await immediateTransaction { db in
            try db.exec(sql: "UPDATE _taskbridge_echo SET active = 1 WHERE id = 1")
            let result = try body(db)
            try db.exec(sql: "UPDATE _taskbridge_echo SET active = 0 WHERE id = 1")
            return result
        }
    }

    /// A write that changes no `task_queue.status` (ledger, quarantine, modes,
    /// `error_message`): the capture triggers fire only on status updates, so
    /// it needs no echo suppression, and skips the two writes of the flag row
    /// (a WAL page per transaction, on every captured and every sent row).
    public func writeLedger<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await immediateTransaction(body)
    }

    /// Every write transaction of the store: `BEGIN IMMEDIATE` with the busy
    /// timeout, and, past it, the lock policy of `lockWatch` (a rolled-back
    /// attempt is safe to repeat: nothing of it was committed).
    func immediateTransaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        while true {
            let started = Date().timeIntervalSince1970
            do {
                let pool = self.pool
                let value = try await writeThread.run { [self] in
                    try pool.writeWithoutTransaction { db in
                        var result: T?
                        try db.inTransaction(.immediate) {
                            // Once another file is at the path, the pool's new
                            // readers open it while this writer still holds the
                            // old one: nothing read there may be written here.
                            if let change = replacedFile() {
                                throw LegacyQueueError.fileReplaced(path: path, now: change.now)
                            }
                            result = try body(db)
                            return .commit
                        }
                        return result!
                    }
                }
                lockWatch.ended()
                writeFailures.succeeded()
                return value
            } catch  where LockWatch.isBusy(error) {
                if !lockWatch.busy(startedAt: started) {
                    throw LegacyQueueError.locked(path: path, seconds: Date().timeIntervalSince1970 - started)
                }
                try Task.checkCancellation()
            } catch {
                writeFailures.failed(error)
                throw error
            }
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await asyncRead(body)
    }

    // MARK: - Objects

    public func install() async throws {
        let objects = self.objects
        try await immediateTransaction { db in try objects.install(db, installedAt: LegacyTimestamp.format(Date())) }
    }

    public func uninstall() async throws {
        try await immediateTransaction { db in try BridgeObjects.uninstall(db) }
    }

    public func objectsHealth() async throws -> BridgeObjects.Health {
        let objects = self.objects
        return try await asyncRead { db in try objects.check(db) }
    }

    // MARK: - Modes

    public func modes() async throws -> [String: String] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_mode") else { return [:] }
            return Dictionary(
                try Row.fetchAll(db, sql: "SELECT task_type, mode FROM _taskbridge_mode").map {
                    ($0["task_type"] as String, $0["mode"] as String)
                },
                uniquingKeysWith: { a, _ in a })
        }
    }

    /// Each type's mode with its canary share.
    public func modeStates() async throws -> [String: ModeState] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_mode") else { return [:] }
            var out: [String: ModeState] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT task_type, mode, percent, share_by FROM _taskbridge_mode") {
                out[r[0]] = ModeState(mode: r[1], percent: r[2], shareBy: Canary.ShareBy(rawValue: r[3]) ?? .id)
            }
            return out
        }
    }

    /// Gives a type its starting mode if the database has none yet.
    public func seedMode(
        taskType: String, mode: String, shareBy: Canary.ShareBy = .id, host: String
    ) async throws -> Bool {
        try await writeLedger { db in
            guard
                try String.fetchOne(
                    db, sql: "SELECT mode FROM _taskbridge_mode WHERE task_type = ?", arguments: [taskType]) == nil
            else { return false }
            let now = LegacyTimestamp.format(Date())
            try db.exec(
                sql: "INSERT INTO _taskbridge_mode (task_type, mode, changed_at, share_by) VALUES (?, ?, ?, ?)",
                arguments: [taskType, mode, now, shareBy.rawValue])
            try db.exec(
                sql:
                    """
                    INSERT INTO _taskbridge_audit (at, task_type, from_mode, to_mode, reason, host, actor, percent) \
                    VALUES (?, ?, NULL, ?, ?, ?, 'taskbridge', 100)
                    """,
                arguments: [now, taskType, mode, "initial mode from bridge.conf", host])
            return true
        }
    }

    /// Keeps each type's canary rule in step with its dedupe mode in
    /// bridge.conf (collapse types share by params). Returns the types changed.
    public func syncShareBy(_ wanted: [String: Canary.ShareBy]) async throws -> [String] {
        try await writeLedger { db in
            var changed: [String] = []
            for (type, by) in wanted.sorted(by: { $0.key < $1.key }) {
                try db.exec(
                    sql: "UPDATE _taskbridge_mode SET share_by = ? WHERE task_type = ? AND share_by <> ?",
                    arguments: [by.rawValue, type, by.rawValue])
                if db.changesCount > 0 { changed.append(type) }
            }
            return changed
        }
    }

    /// Changes a type's mode (and canary percent, 100 but for a partial
    /// `forward`) and records it in the audit trail, atomically. Returns the
    /// state before.
    @discardableResult
    public func setMode(
        taskType: String, mode: String, percent: Int = 100, shareBy: Canary.ShareBy? = nil, reason: String?,
        host: String, actor: String, action: String = "cutover"
    ) async throws -> ModeState? {
        precondition((1...100).contains(percent), "percent is 1...100")
        return try await writeLedger { db in
            let old = try Row.fetchOne(
                db, sql: "SELECT mode, percent, share_by FROM _taskbridge_mode WHERE task_type = ?",
                arguments: [taskType]
            ).map { ModeState(mode: $0[0], percent: $0[1], shareBy: Canary.ShareBy(rawValue: $0[2]) ?? .id) }
            let now = LegacyTimestamp.format(Date())
            let by = shareBy ?? old?.shareBy ?? .id
            try db.exec(
                sql:
                    """
                    INSERT INTO _taskbridge_mode (task_type, mode, changed_at, percent, share_by) \
                    VALUES (?, ?, ?, ?, ?) ON CONFLICT(task_type) DO UPDATE SET mode = excluded.mode, \
                    changed_at = excluded.changed_at, \
                    percent = excluded.percent, share_by = excluded.share_by
                    """,
                arguments: [taskType, mode, now, percent, by.rawValue])
            try db.exec(
                sql:
                    """
                    INSERT INTO _taskbridge_audit (at, task_type, from_mode, to_mode, reason, host, actor, percent, \
                    action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [now, taskType, old?.mode, mode, reason, host, actor, percent, action])
            return old
        }
    }

    /// The newest audit entries, newest first (of one type when given).
    public func audit(taskType: String? = nil, limit: Int = 100) async throws -> [AuditEntry] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_audit") else { return [] }
            let filter = taskType == nil ? "" : "WHERE task_type = ?"
            return try Row.fetchAll(
                db, sql: "SELECT * FROM _taskbridge_audit \(filter) ORDER BY id DESC LIMIT ?",
                arguments: (taskType.map { [$0] } ?? []) + [limit]
            ).map {
                AuditEntry(
                    at: $0["at"], taskType: $0["task_type"], from: $0["from_mode"], to: $0["to_mode"],
                    reason: $0["reason"], host: $0["host"], actor: $0["actor"], action: $0["action"] ?? "cutover",
                    percent: $0["percent"])
            }
        }
    }
}

extension Database {
    /// Runs one statement through the connection's prepared-statement cache:
    /// hot paths (capture, send, mirror, create, claim) repeat the same SQL
    /// thousands of times, and preparing it anew each time was measurable.
    func exec(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

/// A file's device and inode: what `mv` over a path changes.
public struct FileIdentity: Sendable, Equatable, CustomStringConvertible {
    public let device: UInt64
    public let inode: UInt64

    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    public var description: String { "dev \(device) inode \(inode)" }
}

/// The WAL and the index SQLite keeps beside a database file, by identity.
struct Sidecars: Sendable, Equatable {
    var wal: FileIdentity?
    var shm: FileIdentity?

    init(of path: String) {
        wal = FileIdentity(path: path + "-wal")
        shm = FileIdentity(path: path + "-shm")
    }

    /// The paths of the ones that are still `old`'s.
    func shared(with old: Sidecars, path: String) -> [String] {
        var names: [String] = []
        if let wal, wal == old.wal { names.append(path + "-wal") }
        if let shm, shm == old.shm { names.append(path + "-shm") }
        return names
    }
}
