/// What `PRAGMA table_info` says about the legacy table, reduced to what the
/// bridge needs. Detected every time, never assumed (spec section 8).
public struct LegacySchema: Sendable, Equatable {
    public enum Variant: String, Sendable {
        /// `schema.sql`: 15 columns with CHECK constraints.
        case a = "A"
        /// Same columns, no CHECKs, nullable parameters/priority/status/updated_at.
        case aMin = "A-min"
        /// Older A without `run_after_utc`.
        case aNoRunAfter = "A (no run_after_utc)"
    }

    public var table: String
    public var variant: Variant
    public var columns: Set<String>
    public var hasRunAfter: Bool { columns.contains("run_after_utc") }
    public var hasPriority: Bool { columns.contains("priority") }
    public var hasRetryColumns: Bool { columns.contains("retry_count") && columns.contains("max_retries") }
    /// CHECK constraints present in the table definition.
    public var hasChecks: Bool

    /// Columns every supported variant has: what BaseWorker reads and writes.
    public static let required = [
        "id", "task_type", "parameters", "status", "claimed_by", "claimed_at", "result_data", "error_message",
        "completed_at", "created_at", "updated_at",
    ]

    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: String
        public var notNull: Bool
        public var primaryKey: Bool
        public init(name: String, type: String, notNull: Bool, primaryKey: Bool) {
            self.name = name
            self.type = type
            self.notNull = notNull
            self.primaryKey = primaryKey
        }
    }

    public enum DetectionError: Error, CustomStringConvertible, Sendable, Equatable {
        case missingTable(String)
        case variantB(String)
        case variantC(String)
        case unsupported(table: String, missing: [String])

        public var description: String {
            switch self {
            case .missingTable(let t):
                return "the legacy database has no table \(t) (check [legacy] database and table in bridge.conf)"
            case .variantB(let t):
                return
                    """
                    \(t) is the Client-backend queue (variant B: type/payload columns, 'leased' status, inverted \
                    priority). 
                    """
                        + "taskbridge detects it but does not bridge it yet; only the worker queue (variant A, "
                        + "data/worker_queue.db) is supported"
            case .variantC(let t):
                return "\(t) is the research prototype queue (variant C: task_id TEXT UNIQUE); it is not supported"
            case .unsupported(let t, let missing):
                return "\(t) is not a PrismQ worker queue: missing column(s) \(missing.joined(separator: ", ")) "
                    + "(expected at least: \(LegacySchema.required.joined(separator: ", ")))"
            }
        }
    }

    /// Pure detection from `PRAGMA table_info` and the table's `CREATE` SQL.
    public static func detect(
        table: String, columns: [Column], createSQL: String?
    ) throws(DetectionError) -> LegacySchema {
        guard !columns.isEmpty else { throw .missingTable(table) }
        let names = Set(columns.map { $0.name.lowercased() })
        if names.contains("type") && names.contains("payload") && !names.contains("task_type") {
            throw .variantB(table)
        }
        if names.contains("task_id") && !names.contains("claimed_by") { throw .variantC(table) }
        let missing = required.filter { !names.contains($0) }
        guard missing.isEmpty else { throw .unsupported(table: table, missing: missing) }
        let hasChecks = createSQL?.uppercased().contains("CHECK") ?? false
        let variant: Variant
        if !names.contains("run_after_utc") {
            variant = .aNoRunAfter
        } else if hasChecks {
            variant = .a
        } else {
            variant = .aMin
        }
        return LegacySchema(table: table, variant: variant, columns: names, hasChecks: hasChecks)
    }

    /// `schema.sql@67c55005` without its DROP statements: what
    /// `create_if_missing` creates. Nothing else in taskbridge runs legacy DDL.
    public static func variantADDL(table: String = "task_queue") -> String {
        """
        CREATE TABLE IF NOT EXISTS \(table) (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_type TEXT NOT NULL,
            parameters TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 5,
            run_after_utc TEXT,
            status TEXT NOT NULL DEFAULT 'queued',
            claimed_by TEXT,
            claimed_at TEXT,
            retry_count INTEGER NOT NULL DEFAULT 0,
            max_retries INTEGER NOT NULL DEFAULT 3,
            result_data TEXT,
            error_message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            completed_at TEXT,
            CHECK (priority BETWEEN 1 AND 10),
            CHECK (retry_count <= max_retries),
            CHECK (status IN ('queued', 'claimed', 'running', 'completed', 'failed', 'cancelled'))
        );
        CREATE INDEX IF NOT EXISTS idx_\(table)_claiming ON \(table)(status, priority DESC, created_at DESC) WHERE
            status = 'queued';
        CREATE INDEX IF NOT EXISTS idx_\(table)_worker ON \(table)(claimed_by, status);
        CREATE INDEX IF NOT EXISTS idx_\(table)_created ON \(table)(created_at);
        """
    }
}

/// Legacy status vocabulary (variant A) and its mapping to TaskManager.
public enum LegacyStatus: String, Sendable, CaseIterable {
    case queued, claimed, running, completed, failed, cancelled

    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
    public var isInFlight: Bool { self == .claimed || self == .running }

    /// Case-insensitive, as proposal-style tables wrote UPPERCASE.
    public init?(text: String?) {
        guard let t = text?.lowercased() else { return nil }
        self.init(rawValue: t)
    }

    /// How a legacy status compares with TaskManager's (spec section 8).
    public var taskManagerEquivalent: String {
        switch self {
        case .queued: return "pending"
        case .claimed, .running: return "claimed"
        case .completed: return "completed"
        case .failed, .cancelled: return "failed"
        }
    }

    /// What a bridged row shows for a TaskManager status: the bridge holds a
    /// pending task (`claimed`), a TaskManager worker runs it (`running`),
    /// then the terminal states map one to one.
    public static func mirroring(taskManagerStatus s: String) -> LegacyStatus? {
        switch s {
        case "pending", "pending (retry)": return .claimed
        case "claimed": return .running
        case "completed": return .completed
        case "failed": return .failed
        default: return nil
        }
    }
}
