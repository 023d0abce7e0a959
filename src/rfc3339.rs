//! RFC 3339 timestamps as instants, for ordering: registries and Harbor write them with different
//! offsets and fraction lengths (`…T20:00:00+05:00`, `…T15:00:00.5Z`), which do not sort as text.

/// Seconds since the Unix epoch and nanoseconds, or `None` for text that is not RFC 3339.
pub fn parse(s: &str) -> Option<(i64, u32)> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

/// Orders two optional timestamps newest first; unparseable or missing ones go last.
pub fn newest_first(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    let key = |t: Option<&str>| t.and_then(parse);
    key(b).cmp(&key(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse("2026-01-02T22:00:00Z"), Some((1_767_391_200, 0)));
        assert_eq!(parse("2026-01-03T01:00:00+05:00"), Some((1_767_384_000, 0)));
        assert_eq!(
            parse("2026-01-02T22:00:00.5Z"),
            Some((1_767_391_200, 500_000_000))
        );
        assert_eq!(
            parse("2026-11-26T15:58:04.394718408Z").unwrap().1,
            394_718_408
        );
        assert_eq!(
            parse("2024-02-29T12:00:00-01:30"),
            parse("2024-02-29T13:30:00Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ordering() {
        let mut v = vec![
            Some("2026-01-02T22:00:00Z"),
            None,
            Some("2026-01-03T01:00:00+05:00"),
            Some("2026-01-02T22:00:00.5Z"),
        ];
        v.sort_by(|a, b| newest_first(*a, *b));
        assert_eq!(
            v,
            vec![
                Some("2026-01-02T22:00:00.5Z"),
                Some("2026-01-02T22:00:00Z"),
                Some("2026-01-03T01:00:00+05:00"),
                None
            ]
        );
    }
}
