import Foundation
import GRDB
import SQLiteText
import Synchronization
import TaskManagerModel

/// The embedded TaskManager's storage: one SQLite file in WAL mode.
///
/// GRDB serialises writes on one connection, so every check-then-act below
/// (dedupe lookup then insert, claim select then update, completion checks)
/// runs inside a single write transaction and cannot interleave with another
/// request; `UNIQUE(dedupe_key)` backs this up at the schema level.
public final class TaskStore: Sendable {
    public let pool: DatabasePool
    let config: ServerConfiguration
    private let typeCache = Mutex<[String: CachedType]>([:])

    public init(path: String, configuration: ServerConfiguration) throws {
        var c = Configuration()
        c.busyMode = .timeout(10)
        c.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        pool = try DatabasePool(path: path, configuration: c)
        config = configuration
        try migrate()
    }

    private func migrate() throws {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE task_types (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL UNIQUE,
                        version TEXT NOT NULL,
                        param_schema_json TEXT NOT NULL,
                        is_active INTEGER NOT NULL DEFAULT 1,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL
                    );
                    CREATE TABLE tasks (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        type_id INTEGER NOT NULL REFERENCES task_types(id) ON DELETE CASCADE,
                        status TEXT NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending','claimed','completed','failed')),
                        params_json TEXT NOT NULL,
                        dedupe_key TEXT NOT NULL UNIQUE,
                        result_json TEXT,
                        error_message TEXT,
                        priority INTEGER NOT NULL DEFAULT 0,
                        progress INTEGER NOT NULL DEFAULT 0,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        claimed_by TEXT,
                        claimed_at TEXT,
                        claimed_at_epoch REAL,  -- the lease clock; claimed_at has 1 s resolution
                        completed_at TEXT,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL
                    );
                    CREATE INDEX idx_tasks_claim_time ON tasks(type_id, status, created_at, id);
                    CREATE INDEX idx_tasks_claim_priority ON tasks(type_id, status, priority, id);
                    CREATE INDEX idx_tasks_status_created ON tasks(status, created_at);
                    CREATE INDEX idx_tasks_created ON tasks(created_at);
                    CREATE TABLE task_history (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
                        status_change TEXT NOT NULL,
                        worker_id TEXT,
                        message TEXT,
                        created_at TEXT NOT NULL
                    );
                    CREATE INDEX idx_history_task ON task_history(task_id);
                    """)
        }
        try m.migrate(pool)
    }

    // MARK: - Task types

    public enum RegisterOutcome: Sendable { case created(Int64), updated(Int64) }

    public func registerType(name: String, version: String, schemaJSON: String) async throws -> RegisterOutcome {
        typeCache.withLock { $0[name] = nil }
        defer { typeCache.withLock { $0[name] = nil } }
        let now = MySQLTime.format(config.clock.now())
        return try await pool.write { db in
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM task_types WHERE name = ?", arguments: [name]) {
                try db.exec(
                    sql:
                        """
                        UPDATE task_types SET version = ?, param_schema_json = ?, is_active = 1, updated_at = ? WHERE \
                        id = ?
                        """,
                    arguments: [version, schemaJSON, now, id])
                return .updated(id)
            }
            try db.exec(
                sql:
                    """
                    INSERT INTO task_types (name, version, param_schema_json, is_active, created_at, updated_at) \
                    VALUES (?, ?, ?, 1, ?, ?)
                    """,
                arguments: [name, version, schemaJSON, now, now])
            return .created(db.lastInsertedRowID)
        }
    }

    public struct TypeRow: Sendable {
        public var id: Int64, name: String, version: String, schemaJSON: String, isActive: Bool
        public var createdAt: String, updatedAt: String, usageCount: Int64, lastUsedAt: String?
    }

    private static func typeRow(_ r: Row) -> TypeRow {
        TypeRow(
            id: r["id"], name: r["name"], version: r["version"], schemaJSON: r["param_schema_json"],
            isActive: (r["is_active"] as Int64? ?? 1) != 0, createdAt: r["created_at"], updatedAt: r["updated_at"],
            usageCount: r["usage_count"] ?? 0, lastUsedAt: r["last_used_at"])
    }

    /// Creates look their type up on every request; a short-lived cache
    /// spares them a read transaction and a schema parse each. Register
    /// invalidates it; the TTL bounds staleness when another process shares
    /// the database file.
    public func cachedType(named name: String) async throws -> (TypeRow, JSONValue?)? {
        let now = Date().timeIntervalSince1970
        if let hit = typeCache.withLock({ $0[name] }), now - hit.at < 2 { return (hit.row, hit.schema) }
        guard let row = try await type(named: name) else { return nil }
        let schema = try? JSONParser.parse(row.schemaJSON)
        typeCache.withLock { $0[name] = CachedType(row: row, schema: schema, at: now) }
        return (row, schema)
    }

    struct CachedType: Sendable { var row: TypeRow; var schema: JSONValue?; var at: Double }

    public func type(named name: String) async throws -> TypeRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM task_types WHERE name = ?", arguments: [name]).map(Self.typeRow)
        }
    }

    public static let typeSortColumns = [
        "usage_count", "last_used_at", "name", "id", "version", "created_at", "updated_at",
    ]

    public func listTypes(activeOnly: Bool, sortBy: String, sortOrder: String) async throws -> [TypeRow] {
        precondition(Self.typeSortColumns.contains(sortBy) && ["ASC", "DESC"].contains(sortOrder))
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT tt.*, COALESCE(u.usage_count, 0) AS usage_count, u.last_used_at
                    FROM task_types tt
                    LEFT JOIN (SELECT type_id, COUNT(*) AS usage_count, MAX(created_at) AS last_used_at
                               FROM tasks GROUP BY type_id) u ON u.type_id = tt.id
                    \(activeOnly ? "WHERE tt.is_active = 1" : "")
                    ORDER BY \(sortBy) \(sortOrder), tt.id ASC
                    """
            ).map(Self.typeRow)
        }
    }

    // MARK: - Tasks

    public enum CreateOutcome: Sendable {
        case created(id: Int64, dedupeKey: String)
        case deduplicated(id: Int64, status: String)
    }

    public func createTask(
        typeID: Int64, typeName: String, paramsJSON: String, priority: Int64
    ) async throws -> CreateOutcome {
        let key = DedupeKey.compute(type: typeName, paramsJSON: paramsJSON)
        let now = MySQLTime.format(config.clock.now())
        let history = config.enableHistory
        return try await pool.write { db in
            if let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, status FROM tasks WHERE dedupe_key = ?"), arguments: [key])
            {
                return .deduplicated(id: row["id"], status: row["status"])
            }
            try db.exec(
                sql: """
                    INSERT INTO tasks (type_id, status, params_json, dedupe_key, priority, created_at, updated_at)
                    VALUES (?, 'pending', ?, ?, ?, ?, ?)
                    """,
                arguments: [typeID, paramsJSON, key, priority, now, now])
            let id = db.lastInsertedRowID
            if history {
                try db.exec(
                    sql:
                        """
                        INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (?, \
                        'created', NULL, 'Task created', ?)
                        """,
                    arguments: [id, now])
            }
            return .created(id: id, dedupeKey: key)
        }
    }

    public struct ClaimRow: Sendable {
        public var id: Int64, type: String, paramsJSON: String, attempts: Int64, priority: Int64
    }

    public static let claimSortColumns = ["created_at", "priority", "id", "attempts"]

    /// Claims the best pending task, or an expired lease, of one type.
    ///
    /// The pending and the expired candidates are looked up separately (each
    /// an index range scan) and the better one by the requested order wins;
    /// ties break by id so FIFO/LIFO are deterministic within one second.
    public func claim(
        workerID: String, typeID: Int64, typePattern: String?, sortBy: String, sortOrder: String
    ) async throws
        -> ClaimRow?
    {
        precondition(Self.claimSortColumns.contains(sortBy) && ["ASC", "DESC"].contains(sortOrder))
        let nowDate = config.clock.now()
        let now = MySQLTime.format(nowDate)
        let epoch = nowDate.timeIntervalSince1970
        let expiry = epoch - config.claimTimeout
        let history = config.enableHistory
        let idOrder = (sortBy == "created_at" || sortBy == "id") ? sortOrder : "ASC"
        let order = sortBy == "id" ? "t.id \(sortOrder)" : "t.\(sortBy) \(sortOrder), t.id \(idOrder)"
        return try await pool.write { db -> ClaimRow? in
            if let typePattern, !typePattern.isEmpty {
                let matches =
                    try Bool.fetchOne(
                        db, sql: "SELECT name LIKE ? FROM task_types WHERE id = ?", arguments: [typePattern, typeID])
                    ?? false
                if !matches { return nil }
            }
            let select =
                """
                SELECT t.id, tt.name AS type, t.params_json, t.attempts, t.priority, t.created_at FROM tasks t JOIN \
                task_types tt ON tt.id = t.type_id
                """
            let pending = try Row.fetchOne(
                db.cachedStatement(
                    sql: "\(select) WHERE t.type_id = ? AND t.status = 'pending' ORDER BY \(order) LIMIT 1"),
                arguments: [typeID])
            let expired = try Row.fetchOne(
                db.cachedStatement(
                    sql:
                        """
                        \(select) WHERE t.type_id = ? AND t.status = 'claimed' AND t.claimed_at_epoch < ? ORDER BY \
                        \(order) LIMIT 1
                        """
                ),
                arguments: [typeID, expiry])
            let pick: Row?
            switch (pending, expired) {
            case (nil, nil): return nil
            case (let p?, nil): pick = p
            case (nil, let e?): pick = e
            case (let p?, let e?):
                pick = Self.precedes(e, p, sortBy: sortBy, sortOrder: sortOrder, idOrder: idOrder) ? e : p
            }
            guard let row = pick else { return nil }
            let id: Int64 = row["id"]
            try db.exec(
                sql: """
                    UPDATE tasks SET status = 'claimed', claimed_by = ?, claimed_at = ?, claimed_at_epoch = ?,
                        attempts = attempts + 1, updated_at = ? WHERE id = ?
                    """,
                arguments: [workerID, now, epoch, now, id])
            if history {
                try db.exec(
                    sql:
                        """
                        INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (?, \
                        'claimed', ?, 'Task claimed by worker', ?)
                        """,
                    arguments: [id, workerID, now])
            }
            return ClaimRow(
                id: id, type: row["type"], paramsJSON: row["params_json"], attempts: row["attempts"] + 1,
                priority: row["priority"])
        }
    }

    private static func precedes(_ a: Row, _ b: Row, sortBy: String, sortOrder: String, idOrder: String) -> Bool {
        func cmp<T: Comparable>(_ x: T, _ y: T, _ order: String) -> Bool? {
            if x == y { return nil }
            return order == "ASC" ? x < y : x > y
        }
        let primary: Bool?
        switch sortBy {
        case "created_at": primary = cmp(a["created_at"] as String, b["created_at"] as String, sortOrder)
        case "priority": primary = cmp(a["priority"] as Int64, b["priority"] as Int64, sortOrder)
        case "attempts": primary = cmp(a["attempts"] as Int64, b["attempts"] as Int64, sortOrder)
        default: primary = nil
        }
        return primary ?? (cmp(a["id"] as Int64, b["id"] as Int64, idOrder) ?? false)
    }

    public enum OwnershipError: Error, Sendable { case notFound, notClaimed, otherWorker }

    private static func checkOwnership(_ db: Database, id: Int64, workerID: String) throws -> Row {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, status, claimed_by, attempts FROM tasks WHERE id = ?"),
                arguments: [id])
        else { throw OwnershipError.notFound }
        guard (row["status"] as String) == "claimed" else { throw OwnershipError.notClaimed }
        guard (row["claimed_by"] as String?) == workerID else { throw OwnershipError.otherWorker }
        return row
    }

    /// Returns the reported status: `completed`, `failed` or `pending (retry)`.
    public func complete(
        id: Int64, workerID: String, success: Bool, resultJSON: String?, error: String?
    ) async throws -> String {
        let now = MySQLTime.format(config.clock.now())
        let maxAttempts = config.maxAttempts
        let history = config.enableHistory
        return try await pool.write { db in
            let row = try Self.checkOwnership(db, id: id, workerID: workerID)
            let attempts: Int64 = row["attempts"]
            let retry = !success && attempts < maxAttempts
            let reported = success ? "completed" : (retry ? "pending (retry)" : "failed")
            if retry {
                try db.exec(
                    sql: """
                        UPDATE tasks SET status = 'pending', claimed_by = NULL, claimed_at = NULL, claimed_at_epoch =
                            NULL,
                            result_json = ?, error_message = CAST(? AS TEXT), completed_at = ?, updated_at = ? WHERE
                                id = ?
                        """,
                    arguments: [resultJSON, SQLiteText.bind(error), now, now, id])
            } else {
                try db.exec(
                    sql: """
                        UPDATE tasks SET status = ?, result_json = ?, error_message = CAST(? AS TEXT), completed_at =
                            ?, updated_at = ?
                        WHERE id = ?
                        """,
                    arguments: [success ? "completed" : "failed", resultJSON, SQLiteText.bind(error), now, now, id])
            }
            if history {
                let message = success ? "Task completed successfully" : "Task failed: \(error ?? "")"
                try db.exec(
                    sql:
                        """
                        INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (?, \
                        ?, ?, CAST(? AS TEXT), ?)
                        """,
                    arguments: [id, reported, workerID, SQLiteText.bind(message), now])
            }
            return reported
        }
    }

    public func progress(id: Int64, workerID: String, progress: Int64, message: String?) async throws {
        let now = MySQLTime.format(config.clock.now())
        let history = config.enableHistory
        try await pool.write { db in
            _ = try Self.checkOwnership(db, id: id, workerID: workerID)
            try db.exec(
                sql: "UPDATE tasks SET progress = ?, updated_at = ? WHERE id = ?", arguments: [progress, now, id])
            if history {
                let text = "Progress: \(progress)%" + (message.map { $0.isEmpty ? "" : " - \($0)" } ?? "")
                try db.exec(
                    sql:
                        """
                        INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (?, \
                        'progress_update', ?, ?, ?)
                        """,
                    arguments: [id, workerID, text, now])
            }
        }
    }

    /// A task as the query routes return it; `params`/`result` only for
    /// `GET /tasks/{id}`. A plain value rather than a GRDB `Row`, so reads can
    /// run on the pool's async API instead of blocking a cooperative thread.
    public struct TaskRecord: Sendable {
        public var id: Int64, type: String, status: String
        public var paramsJSON: String?, resultJSON: String?, errorMessage: String?
        public var priority: Int64, progress: Int64, attempts: Int64
        public var claimedBy: String?, claimedAt: String?, completedAt: String?, createdAt: String

        init(_ r: Row) {
            id = r["id"]
            type = r["type"]
            status = r["status"]
            paramsJSON = r["params_json"]
            resultJSON = r["result_json"]
            errorMessage = r.hasColumn("error_message") ? SQLiteText.decode(r["error_message"]) : nil
            priority = r["priority"]
            progress = r["progress"]
            attempts = r["attempts"]
            claimedBy = r["claimed_by"]
            claimedAt = r["claimed_at"]
            completedAt = r["completed_at"]
            createdAt = r["created_at"]
        }
    }

    public func task(id: Int64) async throws -> TaskRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT t.id, tt.name AS type, t.status, t.params_json, t.result_json, CAST(t.error_message AS
                            BLOB) AS error_message, t.priority,
                               t.progress, t.attempts, t.claimed_by, t.claimed_at, t.completed_at, t.created_at
                        FROM tasks t JOIN task_types tt ON tt.id = t.type_id WHERE t.id = ?
                        """), arguments: [id]
            ).map(TaskRecord.init)
        }
    }

    /// `GET /tasks`: `statuses` and `type` match exactly, or with LIKE when
    /// they contain `%`; newest first.
    public func listTasks(statuses: [String], type: String?, limit: Int, offset: Int) async throws -> [TaskRecord] {
        var clauses: [String] = []
        var args: [any DatabaseValueConvertible] = []
        if !statuses.isEmpty {
            let parts = statuses.map { s -> String in
                args.append(s)
                return s.contains("%") ? "t.status LIKE ?" : "t.status = ?"
            }
            clauses.append("(" + parts.joined(separator: " OR ") + ")")
        }
        if let type, !type.isEmpty {
            clauses.append(type.contains("%") ? "tt.name LIKE ?" : "tt.name = ?")
            args.append(type)
        }
        args.append(limit)
        args.append(offset)
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let arguments = StatementArguments(args) ?? StatementArguments()
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT t.id, tt.name AS type, t.status, t.priority, t.progress, t.attempts, t.claimed_by,
                           t.created_at, t.completed_at
                    FROM tasks t JOIN task_types tt ON tt.id = t.type_id
                    \(whereSQL) ORDER BY t.created_at DESC, t.id DESC LIMIT ? OFFSET ?
                    """, arguments: arguments
            ).map(TaskRecord.init)
        }
    }

    public func healthCheck() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
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
