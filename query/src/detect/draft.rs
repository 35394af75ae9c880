//! Building a finding: its identity, window and the time phrases explanations use.

use calltrail_schemas::finding::{Finding, Severity, finding_id};
use chrono::{DateTime, Datelike, Timelike, Utc};

use super::rows::HOUR_NS;

/// A finding of `detector`'s `rule` about `entity` over `[start_ns, end_ns)`; the caller fills
/// in the numbers, the scope columns and the explanation.
pub(crate) fn finding(
    detector: &str,
    rule: &str,
    entity_kind: &str,
    entity: &str,
    start_ns: i64,
    end_ns: i64,
) -> Finding {
    Finding {
        finding_id: finding_id(detector, entity_kind, entity, start_ns),
        detector: detector.to_string(),
        rule: rule.to_string(),
        severity: Severity::Medium,
        entity_kind: entity_kind.to_string(),
        entity: entity.to_string(),
        principal: None,
        team: None,
        tenant: None,
        server_name: None,
        tool_name: None,
        window_start_ns: start_ns,
        window_end_ns: end_ns,
        observed: 0.0,
        expected: None,
        score: 0.0,
        explanation: String::new(),
        detected_at_ns: 0,
    }
}

fn utc(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// `between 02:00 and 03:00 UTC on Monday 2026-09-14` for the hour `hour` (since the epoch).
pub(crate) fn hour_phrase(hour: i64) -> String {
    let t = utc(hour * HOUR_NS);
    let end = utc((hour + 1) * HOUR_NS);
    format!(
        "between {:02}:00 and {:02}:00 UTC on {} {}",
        t.hour(),
        end.hour(),
        t.weekday_name(),
        t.format("%Y-%m-%d")
    )
}

/// `Monday 02:00` for the hour of the week of `hour`.
pub(crate) fn hour_of_week(hour: i64) -> String {
    let t = utc(hour * HOUR_NS);
    format!("{} {:02}:00", t.weekday_name(), t.hour())
}

/// `2026-09-14` for the day containing `hour`.
pub(crate) fn day_phrase(hour: i64) -> String {
    utc(hour * HOUR_NS).format("%Y-%m-%d").to_string()
}

/// A number as people write it: no decimals when whole, else one.
pub(crate) fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

/// The English name of a weekday.
trait WeekdayName {
    fn weekday_name(&self) -> &'static str;
}

impl WeekdayName for DateTime<Utc> {
    fn weekday_name(&self) -> &'static str {
        match self.weekday() {
            chrono::Weekday::Mon => "Monday",
            chrono::Weekday::Tue => "Tuesday",
            chrono::Weekday::Wed => "Wednesday",
            chrono::Weekday::Thu => "Thursday",
            chrono::Weekday::Fri => "Friday",
            chrono::Weekday::Sat => "Saturday",
            chrono::Weekday::Sun => "Sunday",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_name_the_utc_hour_and_day() {
        // 2026-09-14T02:00Z is a Monday.
        let hour = 1_789_351_200 / 3600;
        assert_eq!(
            hour_phrase(hour),
            "between 02:00 and 03:00 UTC on Monday 2026-09-14"
        );
        assert_eq!(hour_of_week(hour), "Monday 02:00");
        assert_eq!(day_phrase(hour), "2026-09-14");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(2.25), "2.2");
    }
}
