import Foundation

/// Legacy timestamps: every writer is UTC, in several text formats
/// (`datetime('now')`, naive `utcnow().isoformat()`, `...+00:00`, `...Z`).
/// They are compared as instants here, never as strings: `' '` sorts before
/// `'T'`, so string order across mixed rows is wrong.
public enum LegacyTimestamp {
    /// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][Z|±HH:MM|±HHMM]` and a bare
    /// `YYYY-MM-DD`; values without an offset are UTC. Garbage gives nil.
    public static func parse(_ text: String) -> Date? {
        let s = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= s.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = s[i + k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < s.count, s[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(45), let month = digits(2), expect(45), let day = digits(2) else {
            return nil
        }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0
        if i < s.count {
            guard s[i] == 84 || s[i] == 32 else { return nil }  // 'T' or ' '
            i += 1
            guard let h = digits(2), expect(58), let m = digits(2) else { return nil }
            hour = h
            minute = m
            if expect(58) {
                guard let sec = digits(2) else { return nil }
                second = sec
                if expect(46) {
                    var scale = 0.1
                    var any = false
                    while i < s.count, s[i] >= 48, s[i] <= 57 {
                        fraction += Double(s[i] - 48) * scale
                        scale /= 10
                        i += 1
                        any = true
                    }
                    guard any else { return nil }
                }
            }
            if i < s.count {
                if s[i] == 90 || s[i] == 122 {  // Z
                    i += 1
                } else if s[i] == 43 || s[i] == 45 {
                    let sign = s[i] == 43 ? 1 : -1
                    i += 1
                    guard let oh = digits(2) else { return nil }
                    _ = expect(58)
                    let om = digits(2) ?? 0
                    offsetSeconds = sign * (oh * 3600 + om * 60)
                } else {
                    return nil
                }
            }
            guard i == s.count else { return nil }
        }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var c = DateComponents()
        c.year = year; c.month = month; c.day = day; c.hour = hour; c.minute = minute; c.second = second
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        guard let base = cal.date(from: c), cal.component(.day, from: base) == day else { return nil }
        return base.addingTimeInterval(fraction - Double(offsetSeconds))
    }

    /// What the Python workers write: `datetime.now(timezone.utc).isoformat()`,
    /// `2026-11-29T14:53:36.123456+00:00`.
    public static func format(_ date: Date) -> String {
        let whole = floor(date.timeIntervalSince1970)
        var micros = Int(((date.timeIntervalSince1970 - whole) * 1_000_000).rounded())
        var seconds = time_t(whole)
        if micros >= 1_000_000 { micros -= 1_000_000; seconds += 1 }
        var tm = tm()
        gmtime_r(&seconds, &tm)
        func p(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let m = String(micros)
        return
            "\(p(tm.tm_year + 1900, 4))-\(p(tm.tm_mon + 1, 2))-\(p(tm.tm_mday, 2))T\(p(tm.tm_hour, 2)):"
            + "\(p(tm.tm_min, 2)):\(p(tm.tm_sec, 2))."
            + String(repeating: "0", count: 6 - m.count) + m + "+00:00"
    }
}
