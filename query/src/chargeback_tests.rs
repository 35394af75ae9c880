//! Unit tests of the arithmetic: exact splits, periods that add up to the month, SQL quoting.

use super::*;
use crate::price_table::CallPrice;

fn at(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

fn table(monthly: f64) -> PriceTable {
    let mut c = ChargebackConfig::default();
    c.price_tables[0].platform_monthly_cost = monthly;
    c.price_tables.remove(0)
}

#[test]
fn splits_are_exact_and_follow_the_largest_remainders() {
    // 3100 EUR over 4, 2 and 1 calls (the ledger's October).
    assert_eq!(
        split(3_100_000_000, &[1, 2, 4]),
        [442_857_143, 885_714_286, 1_771_428_571]
    );
    for (total, weights) in [
        (1, vec![1, 1, 1]),
        (100, vec![3, 3, 3]),
        (999_999_999, vec![7, 0, 13, 1]),
        (0, vec![1, 2]),
    ] {
        let shares = split(total, &weights);
        assert_eq!(
            shares.iter().sum::<i64>(),
            total,
            "{total} over {weights:?}"
        );
        for (s, w) in shares.iter().zip(&weights) {
            if *w == 0 {
                assert_eq!(*s, 0, "nothing for a group without calls");
            }
        }
    }
    assert_eq!(split(100, &[0, 0]), [0, 0], "no calls: nothing allocated");
}

#[test]
fn the_periods_of_a_month_add_up_to_its_cost() {
    let t = table(3100.0);
    let (start, end) = (at("2026-10-01"), at("2026-11-01"));
    for g in [Granularity::Hour, Granularity::Day, Granularity::Month] {
        let mut sum = 0;
        let mut p = start;
        while p < end {
            let next = g.next(p);
            sum += platform_cost_of(&t, p, next);
            p = next;
        }
        assert_eq!(sum, 3_100_000_000, "{g:?}");
    }
    assert_eq!(
        platform_cost_of(&t, at("2026-10-08"), at("2026-10-09")),
        100_000_000
    );
    // February is shorter: a day of it costs more.
    assert_eq!(
        platform_cost_of(&table(2800.0), at("2026-02-03"), at("2026-02-04")),
        100_000_000
    );
}

#[test]
fn periods_start_at_utc_boundaries() {
    let t = at("2026-12-31T23:59:59Z");
    assert_eq!(Granularity::Month.floor(t), at("2026-12-01"));
    assert_eq!(Granularity::Month.next(at("2026-12-01")), at("2027-01-01"));
    assert_eq!(Granularity::Day.floor(t), at("2026-12-31"));
    assert_eq!(Granularity::Hour.floor(t), at("2026-12-31T23:00:00Z"));
}

#[test]
fn config_values_are_quoted_in_the_price_sql() {
    let mut t = table(0.0);
    t.calls.push(CallPrice {
        server: Some("o'brien-mcp".into()),
        tool: None,
        operation_class: Some("write".into()),
        per_call: 0.25,
    });
    let sql = call_price_sql(&t);
    assert!(
        sql.contains("server_name = 'o''brien-mcp' AND operation_class = 'write'"),
        "{sql}"
    );
    assert!(sql.contains("THEN 0.250000000000"), "{sql}");
    assert_eq!(call_price_sql(&table(0.0)), "0.000000000000");
    assert!(token_price_sql(&table(0.0)).contains("(0.000000000000)"));
}

#[test]
fn decimals_are_exact() {
    assert_eq!(decimal(1_785_000_091), "1785.000091");
    assert_eq!(decimal(5), "0.000005");
    assert_eq!(decimal(-1_500_000), "-1.500000");
}

#[test]
fn range_bounds_parse() {
    assert_eq!(at("2026-10-01"), at("2026-10-01T00:00:00Z"));
    assert_eq!(
        parse_time("2026-10-01T02:00:00+02:00"),
        Some(at("2026-10-01T00:00:00Z"))
    );
    assert_eq!(parse_time("last tuesday"), None);
    let d = dates_for(at("2026-10-01"), at("2026-11-01"));
    assert_eq!(
        (d.first.as_str(), d.last.as_str()),
        ("2026-09-30", "2026-11-02")
    );
}
