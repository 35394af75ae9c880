//! Times on the command line: flags take RFC 3339 or a bare date (midnight UTC); output is
//! RFC 3339 in UTC.

use anyhow::{Result, anyhow};

/// Parses the value `s` of `--flag` into nanoseconds since the epoch.
pub(crate) fn parse_time(flag: &str, s: &str) -> Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| anyhow!("--{flag}: {s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| anyhow!("--{flag}: {s:?} is out of range"))
}

/// Nanoseconds since the epoch as RFC 3339 (seconds precision).
pub(crate) fn rfc3339_ns(ns: i64) -> String {
    rfc3339_s(ns.div_euclid(1_000_000_000))
}

/// Seconds since the epoch as RFC 3339.
pub(crate) fn rfc3339_s(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print() {
        assert_eq!(
            parse_time("from", "1970-01-02").unwrap(),
            86_400_000_000_000
        );
        assert_eq!(
            parse_time("from", "1970-01-01T01:00:00+01:00").unwrap(),
            0,
            "offsets are honoured"
        );
        let e = parse_time("to", "yesterday").unwrap_err().to_string();
        assert!(e.starts_with("--to:"), "{e}");
        assert_eq!(rfc3339_ns(86_400_000_000_000), "1970-01-02T00:00:00Z");
    }
}
