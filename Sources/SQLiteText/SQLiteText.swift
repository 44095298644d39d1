import Foundation
import GRDB

/// Free text with every byte, NUL included, through GRDB.
///
/// GRDB binds a Swift `String` with length -1 and reads one with
/// `String(cString:)`, so SQLite sees text only up to its first NUL: a worker's
/// error `boom\0tail` was stored as `boom`. Text that holds a NUL is bound as
/// its UTF-8 bytes in a BLOB, which `CAST(? AS TEXT)` (written in the SQL at
/// that placeholder) stores as TEXT of the full length; it is read back with
/// `CAST(column AS BLOB)` and `decode`. Text without a NUL binds as usual.
/// Identifiers never go through here: a NUL in a type name or worker id is
/// refused before it reaches SQL. Guarded by `EdgeTests.nulInAFailedTasksErrorIsMirroredWhole`
/// and `BadInputTests.nulInIdentifiersIsRefused`.
public enum SQLiteText {
    /// The value to bind at a `CAST(? AS TEXT)` placeholder.
    public static func bind(_ text: String?) -> DatabaseValue {
        guard let text else { return .null }
        if text.utf8.contains(0) { return Data(text.utf8).databaseValue }
        return text.databaseValue
    }

    /// A column read as `CAST(column AS BLOB)` (any storage class is accepted).
    public static func decode(_ value: DatabaseValue) -> String? {
        switch value.storage {
        case .null: return nil
        case .blob(let b): return String(decoding: b, as: UTF8.self)
        case .string(let s): return s
        case .int64(let i): return String(i)
        case .double(let d): return String(d)
        }
    }
}
