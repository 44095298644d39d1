import Foundation
import GRDB
import LegacyQueue
import TaskManagerClient
import TaskManagerModel

/// Legacy queue files in each schema variant of spec section 1, created the
/// way PrismQ created them (never through taskbridge).
public enum LegacyFixture: String, Sendable, CaseIterable {
    case a, aMin, aNoRunAfter, b

    public var ddl: String {
        switch self {
        case .a:
            return LegacySchema.variantADDL(table: "task_queue")
        case .aMin:
            return """
                CREATE TABLE task_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, task_type TEXT NOT NULL, parameters TEXT,
                    priority INTEGER DEFAULT 5, status TEXT DEFAULT 'queued', retry_count INTEGER DEFAULT 0,
                        max_retries INTEGER DEFAULT 3,
                    created_at TEXT NOT NULL, claimed_at TEXT, claimed_by TEXT, completed_at TEXT, updated_at TEXT,
                        run_after_utc TEXT,
                    result_data TEXT, error_message TEXT);
                CREATE TABLE worker_heartbeats (worker_id TEXT PRIMARY KEY, last_heartbeat TEXT NOT NULL,
                    tasks_processed INTEGER DEFAULT 0,
                    tasks_failed INTEGER DEFAULT 0);
                """
        case .aNoRunAfter:
            return """
                CREATE TABLE task_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, task_type TEXT NOT NULL, parameters
                    TEXT NOT NULL,
                    priority INTEGER NOT NULL DEFAULT 5, status TEXT NOT NULL DEFAULT 'queued', claimed_by TEXT,
                        claimed_at TEXT,
                    retry_count INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT 3, result_data TEXT,
                        error_message TEXT,
                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT,
                    CHECK (priority BETWEEN 1 AND 10), CHECK (status IN
                        ('queued','claimed','running','completed','failed','cancelled')));
                """
        case .b:
            return """
                CREATE TABLE task_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, priority INTEGER
                    NOT NULL DEFAULT 100,
                    payload TEXT NOT NULL, compatibility TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT
                        'queued',
                    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5,
                    run_after_utc DATETIME NOT NULL DEFAULT (datetime('now')), lease_until_utc DATETIME,
                        reserved_at_utc DATETIME,
                    processing_started_utc DATETIME, finished_at_utc DATETIME, locked_by TEXT, error_message TEXT,
                        idempotency_key TEXT,
                    created_at_utc DATETIME NOT NULL DEFAULT (datetime('now')), updated_at_utc DATETIME NOT NULL
                        DEFAULT (datetime('now')));
                """
        }
    }

    /// Creates the file with this variant's DDL in WAL mode, as
    /// `QueueDatabase` left it.
    public func create(at path: String) throws {
        let q = try DatabaseQueue(path: path)
        _ = try q.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try q.write { db in try db.execute(sql: ddl) }
        try q.close()
    }
}

/// A connection that only looks (tests, the demo, benchmarks), with a busy
/// timeout: under load even a WAL reader can meet SQLITE_BUSY (a checkpoint,
/// WAL-index recovery), and GRDB's default fails at once.
public func observerConnection(_ path: String) throws -> DatabaseQueue {
    var c = Configuration()
    c.busyMode = .timeout(5)
    c.label = "observer"
    return try DatabaseQueue(path: path, configuration: c)
}

/// A Python-sqlite3-like connection to the legacy file: its own connection,
/// WAL, busy_timeout 5000.
func legacyConnection(_ path: String) throws -> DatabaseQueue {
    var c = Configuration()
    c.busyMode = .timeout(5)
    c.label = "legacy-peer"
    let q = try DatabaseQueue(path: path, configuration: c)
    _ = try q.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
    return q
}

/// A PrismQ producer: raw `INSERT INTO task_queue`, in the statement forms
/// spec section 4.1 lists.
public final class LegacyProducer: Sendable {
    public enum Style: Sendable, CaseIterable {
        /// `datetime('now')` (README, YOUTUBE_VIDEO_WORKER.md).
        case sqliteNow
        /// naive `datetime.utcnow().isoformat()` (MIGRATION_GUIDE.md).
        case naiveISO
        /// `status='queued'` and `datetime.now(timezone.utc).isoformat()` (HN, Scoring tests).
        case awareISO
    }

    let queue: DatabaseQueue
    public init(path: String) throws { queue = try legacyConnection(path) }

    @discardableResult
    public func insert(
        type: String, parameters: String?, priority: Int? = 5, style: Style = .sqliteNow, runAfter: String? = nil
    ) throws -> Int64 {
        try queue.write { db in
            let now = Date()
            switch style {
            case .sqliteNow:
                try db.execute(
                    sql:
                        """
                        INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at, \
                        run_after_utc) VALUES (?, ?, ?, datetime('now'), datetime('now'), ?)
                        """,
                    arguments: [type, parameters, priority, runAfter])
            case .naiveISO:
                let iso = String(LegacyTimestamp.format(now).dropLast(6))
                try db.execute(
                    sql:
                        """
                        INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at, \
                        run_after_utc) VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [type, parameters, priority, iso, iso, runAfter])
            case .awareISO:
                let iso = LegacyTimestamp.format(now)
                try db.execute(
                    sql:
                        """
                        INSERT INTO task_queue (task_type, parameters, priority, status, created_at, updated_at, \
                        run_after_utc) VALUES (?, ?, ?, 'queued', ?, ?, ?)
                        """,
                    arguments: [type, parameters, priority, iso, iso, runAfter])
            }
            return db.lastInsertedRowID
        }
    }

    /// Many rows in one transaction (a bulk producer, or a backlog).
    public func insertBatch(type: String, parameters: [String]) throws {
        try queue.write { db in
            let stmt = try db.makeStatement(
                sql:
                    """
                    INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at) VALUES (?, ?, 5, \
                    datetime('now'), datetime('now'))
                    """
            )
            for p in parameters { try stmt.execute(arguments: [type, p]) }
        }
    }

    /// A row without the run_after_utc column (for the older A variant).
    @discardableResult
    public func insertWithoutRunAfter(type: String, parameters: String) throws -> Int64 {
        try queue.write { db in
            try db.execute(
                sql:
                    """
                    INSERT INTO task_queue (task_type, parameters, priority, created_at, updated_at) VALUES (?, ?, 5, \
                    datetime('now'), datetime('now'))
                    """,
                arguments: [type, parameters])
            return db.lastInsertedRowID
        }
    }

    /// Raw SQL for rows no producer API would write (invalid UTF-8, NULLs).
    public func execute(_ sql: String, _ arguments: StatementArguments = []) throws {
        try queue.write { db in try db.execute(sql: sql, arguments: arguments) }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) throws -> T {
        try queue.read(body)
    }

    public func close() throws { try queue.close() }
}

/// Records who executed what, to count double executions.
public actor ExecutionLog {
    public private(set) var legacy: [Int64: Int] = [:]
    public private(set) var api: [Int64: Int] = [:]
    public init() {}
    public func legacyExecuted(_ rowID: Int64) { legacy[rowID, default: 0] += 1 }
    public func apiExecuted(_ taskID: Int64) { api[taskID, default: 0] += 1 }
    public var legacyDoubles: Int { legacy.values.filter { $0 > 1 }.count }
    public var apiDoubles: Int { api.values.filter { $0 > 1 }.count }
}

/// A legacy BaseWorker (variant A) running its claim SQL unchanged: no
/// task_type filter, `BEGIN IMMEDIATE`, the strategy's ORDER BY, then the
/// completion UPDATE of spec section 4.2.
public final class LegacyWorker: Sendable {
    public let workerID: String
    public let orderBy: String
    let queue: DatabaseQueue

    public init(path: String, workerID: String, strategy: String = "LIFO") throws {
        self.workerID = workerID
        self.orderBy =
            ["FIFO": "created_at ASC, priority DESC", "PRIORITY": "priority DESC, created_at ASC"][strategy]
            ?? "created_at DESC, priority DESC"
        queue = try legacyConnection(path)
    }

    public struct Claimed: Sendable {
        public var id: Int64
        public var taskType: String
        public var parameters: String?
    }

    /// Returns nil when nothing is queued (or the database stayed locked,
    /// which BaseWorker also treats as an empty poll).
    public func claim() throws -> Claimed? {
        let orderBy = self.orderBy, worker = workerID
        return try queue.writeWithoutTransaction { db -> Claimed? in
            try db.execute(sql: "BEGIN IMMEDIATE")
            do {
                let now = LegacyTimestamp.format(Date())
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT id, task_type, parameters, priority, status, retry_count, max_retries, created_at
                            FROM task_queue
                            WHERE status = 'queued'
                              AND (run_after_utc IS NULL OR run_after_utc <= ?)
                            ORDER BY \(orderBy)
                            LIMIT 1
                            """, arguments: [now])
                else {
                    try db.execute(sql: "ROLLBACK")
                    return nil
                }
                let id: Int64 = row["id"]
                try db.execute(
                    sql:
                        """
                        UPDATE task_queue SET status = 'claimed', claimed_at = ?, claimed_by = ?, updated_at = ? WHERE \
                        id = ?
                        """,
                    arguments: [now, worker, now, id])
                try db.execute(sql: "COMMIT")
                return Claimed(id: id, taskType: row["task_type"], parameters: row["parameters"])
            } catch {
                try? db.execute(sql: "ROLLBACK")
                throw error
            }
        }
    }

    public func complete(
        _ id: Int64, success: Bool = true, data: String? = #"{"items_processed": 1}"#, error: String? = nil
    ) throws {
        try queue.write { db in
            let now = LegacyTimestamp.format(Date())
            try db.execute(
                sql:
                    """
                    UPDATE task_queue SET status = ?, completed_at = ?, result_data = ?, error_message = ?, updated_at \
                    = ? WHERE id = ?
                    """,
                arguments: [success ? "completed" : "failed", now, success ? data : nil, error, now, id])
        }
    }

    public func close() throws { try queue.close() }

    /// How long an idle worker waits before its next claim (BaseWorker's
    /// `poll_interval`, shortened): the worker's own pacing, never a wait for
    /// a result.
    public static let idlePoll = Duration.milliseconds(2)

    /// Claims and completes rows until `stop`, logging each execution;
    /// `outcome` decides each row's completion (success with the default data).
    public func run(
        until stop: Deadline, log: ExecutionLog,
        outcome: @Sendable (Claimed) -> (success: Bool, data: String?, error: String?) = { _ in
            (true, #"{"items_processed": 1}"#, nil)
        }
    ) async throws {
        while !stop.passed && !Task.isCancelled {
            guard let c = try claim() else {
                try await Task.sleep(for: Self.idlePoll)
                continue
            }
            await log.legacyExecuted(c.id)
            let o = outcome(c)
            try complete(c.id, success: o.success, data: o.data, error: o.error)
        }
    }
}

/// A TaskManager-side worker, as PrismQ's BaseWorker: claim by type id,
/// complete with a result summary.
public struct APIWorker: Sendable {
    public let client: TaskManagerClient
    public let workerID: String
    public let typeIDs: [Int64]
    /// The result of a task from its params (nil: the default summary).
    public let compute: (@Sendable (ClaimedTask) -> JSONValue)?
    public init(
        client: TaskManagerClient, workerID: String, typeIDs: [Int64],
        compute: (@Sendable (ClaimedTask) -> JSONValue)? = nil
    ) {
        self.client = client
        self.workerID = workerID
        self.typeIDs = typeIDs
        self.compute = compute
    }

    /// Claims and completes tasks until `stop`, pacing idle polls as a
    /// legacy worker does (`LegacyWorker.idlePoll`).
    public func run(until stop: Deadline, log: ExecutionLog) async throws {
        while !stop.passed && !Task.isCancelled {
            if try await runOnce(log: log) == nil { try await Task.sleep(for: LegacyWorker.idlePoll) }
        }
    }

    /// Claims and completes one task; nil when every type was empty.
    public func runOnce(success: Bool = true, log: ExecutionLog? = nil) async throws -> ClaimedTask? {
        for t in typeIDs {
            guard let task = try await client.claimTask(workerID: workerID, taskTypeID: t, policy: .fifo) else {
                continue
            }
            await log?.apiExecuted(task.id)
            let result: JSONValue = compute?(task) ?? ["items_processed": 1, "worker": .string(workerID)]
            _ = try await client.completeTask(
                id: task.id, workerID: workerID, success: success, result: success ? result : nil,
                error: success ? nil : "worker reported failure")
            return task
        }
        return nil
    }
}
