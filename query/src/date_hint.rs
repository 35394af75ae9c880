//! The partitions an ad-hoc query over the `calls` view alone needs, read from its `date` filter.
//!
//! The view pairs client and server records by trace and call id, so DataFusion cannot push a
//! filter on the view's `date` below its windows: `SELECT * FROM calls WHERE date = 'D'` would
//! read every day of the store. Pairing only ever joins records of one call, whose client and
//! server spans start moments apart, so the calls of the dates `[first, last]` need only the
//! records of `[first - 1 day, last + 1 day]`: the same margin the chargeback and ROI reports
//! read with. The query's own filter still decides which rows it returns; the hint only keeps
//! the session from reading partitions that cannot change them.
//!
//! The hint applies only where it is safe: one `SELECT` whose only table is `calls` (no CTE,
//! join, set operation or subquery reading another table or `calls` a second time, which the
//! narrowed tables would also narrow), with lower and upper bounds on `date` among the
//! conjuncts of its `WHERE`.

use chrono::{Duration, NaiveDate};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectNamePart, SetExpr, Statement, TableFactor, Value,
    visit_relations,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::engine::DateRange;

/// The view the hint applies to.
const CALLS: &str = "calls";

/// The partitions `sql` needs, when it is a query over `calls` alone bounded on `date` both ways;
/// `None` (read everything the scope allows) otherwise, including when it does not parse.
pub fn date_hint(sql: &str) -> Option<DateRange> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let [statement] = statements.as_slice() else {
        return None;
    };
    // `EXPLAIN [ANALYZE]` shows the plan the query itself runs with.
    let statement = match statement {
        Statement::Explain { statement, .. } => statement.as_ref(),
        other => other,
    };
    let Statement::Query(query) = statement else {
        return None;
    };
    if query.with.is_some() || !only_calls(statement) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() || !matches!(from.relation, TableFactor::Table { .. }) {
        return None;
    }
    let mut bounds = Bounds::default();
    for conjunct in conjuncts(select.selection.as_ref()?) {
        bounds.add(conjunct);
    }
    let (first, last) = (bounds.first?, bounds.last?);
    if first > last {
        return None;
    }
    Some(DateRange {
        first: day(first - Duration::days(1)),
        last: day(last + Duration::days(1)),
    })
}

/// True when the statement reads exactly one relation, `calls`.
fn only_calls(statement: &Statement) -> bool {
    let mut names = Vec::new();
    let _ = visit_relations(statement, |name| {
        names.push(name.0.clone());
        std::ops::ControlFlow::<()>::Continue(())
    });
    match names.as_slice() {
        [parts] => matches!(
            parts.as_slice(),
            [ObjectNamePart::Identifier(ident)] if ident.value.eq_ignore_ascii_case(CALLS)
        ),
        _ => false,
    }
}

/// The terms of `expr`'s top-level `AND`s.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// The tightest date bounds the conjuncts state (inclusive; a strict bound is kept inclusive,
/// which only reads a day more).
#[derive(Default)]
struct Bounds {
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

impl Bounds {
    fn lower(&mut self, d: NaiveDate) {
        self.first = Some(self.first.map_or(d, |f| f.max(d)));
    }

    fn upper(&mut self, d: NaiveDate) {
        self.last = Some(self.last.map_or(d, |l| l.min(d)));
    }

    fn add(&mut self, conjunct: &Expr) {
        match conjunct {
            Expr::BinaryOp { left, op, right } => {
                let (op, value) = match (is_date(left), is_date(right)) {
                    (true, false) => (op.clone(), right),
                    (false, true) => (flipped(op), left),
                    _ => return,
                };
                let Some(d) = literal_date(value) else {
                    return;
                };
                match op {
                    BinaryOperator::Eq => {
                        self.lower(d);
                        self.upper(d);
                    }
                    BinaryOperator::Gt | BinaryOperator::GtEq => self.lower(d),
                    BinaryOperator::Lt | BinaryOperator::LtEq => self.upper(d),
                    _ => {}
                }
            }
            Expr::Between {
                expr,
                negated: false,
                low,
                high,
            } if is_date(expr) => {
                if let (Some(a), Some(b)) = (literal_date(low), literal_date(high)) {
                    self.lower(a);
                    self.upper(b);
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } if is_date(expr) => {
                let days: Option<Vec<NaiveDate>> = list.iter().map(literal_date).collect();
                if let Some(days) = days
                    && let (Some(a), Some(b)) = (days.iter().min(), days.iter().max())
                {
                    self.lower(*a);
                    self.upper(*b);
                }
            }
            Expr::Nested(inner) => self.add(inner),
            _ => {}
        }
    }
}

/// `a OP b` read as `b OP' a`.
fn flipped(op: &BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        other => other.clone(),
    }
}

/// True for the `date` column, bare or qualified by `calls`.
fn is_date(expr: &Expr) -> bool {
    let named = |i: &Ident, name: &str| i.value.eq_ignore_ascii_case(name);
    match expr {
        Expr::Identifier(i) => named(i, "date"),
        Expr::CompoundIdentifier(parts) => {
            matches!(parts.as_slice(), [t, c] if named(t, CALLS) && named(c, "date"))
        }
        Expr::Nested(inner) => is_date(inner),
        _ => false,
    }
}

/// A `'YYYY-MM-DD'` string literal's day.
fn literal_date(expr: &Expr) -> Option<NaiveDate> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            _ => None,
        },
        Expr::Nested(inner) => literal_date(inner),
        _ => None,
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(sql: &str) -> Option<(String, String)> {
        date_hint(sql).map(|d| (d.first, d.last))
    }

    fn range(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.to_string(), b.to_string()))
    }

    #[test]
    fn a_day_reads_a_day_either_side() {
        assert_eq!(
            hint(
                "SELECT * FROM calls WHERE principal = 'u' AND date = '2025-06-11' ORDER BY start_time"
            ),
            range("2025-06-10", "2025-06-12")
        );
        assert_eq!(
            hint(
                "select count(*) from CALLS where calls.DATE between '2025-06-01' and '2025-06-30'"
            ),
            range("2025-05-31", "2025-07-01")
        );
        assert_eq!(
            hint(
                "SELECT * FROM calls WHERE '2025-06-03' <= date AND date < '2025-06-05' AND (team = 'x')"
            ),
            range("2025-06-02", "2025-06-06")
        );
        assert_eq!(
            hint("EXPLAIN ANALYZE SELECT * FROM calls WHERE date = '2025-06-11'"),
            range("2025-06-10", "2025-06-12")
        );
        assert_eq!(
            hint("SELECT * FROM calls WHERE date IN ('2025-06-09', '2025-06-02')"),
            range("2025-06-01", "2025-06-10")
        );
        // The tightest bounds win.
        assert_eq!(
            hint(
                "SELECT * FROM calls WHERE date >= '2025-06-01' AND date >= '2025-06-05' AND date <= '2025-06-07'"
            ),
            range("2025-06-04", "2025-06-08")
        );
    }

    #[test]
    fn anything_else_reads_everything_the_scope_allows() {
        for sql in [
            // No bound, or only one side.
            "SELECT * FROM calls",
            "SELECT * FROM calls WHERE date >= '2025-06-01'",
            // A disjunction bounds nothing.
            "SELECT * FROM calls WHERE date = '2025-06-01' OR team = 'x'",
            "SELECT * FROM calls WHERE NOT date = '2025-06-01'",
            "SELECT * FROM calls WHERE date NOT BETWEEN '2025-06-01' AND '2025-06-02'",
            // Other tables would be narrowed too.
            "SELECT * FROM tool_calls WHERE date = '2025-06-01'",
            "SELECT * FROM calls c JOIN tool_calls t ON c.trace_id = t.trace_id WHERE date = '2025-06-01'",
            "SELECT * FROM calls WHERE date = '2025-06-01' AND principal IN (SELECT principal FROM calls)",
            "SELECT * FROM calls WHERE date = '2025-06-01' UNION ALL SELECT * FROM calls",
            "WITH x AS (SELECT * FROM calls) SELECT * FROM x WHERE date = '2025-06-01'",
            "SELECT * FROM (SELECT * FROM calls) WHERE date = '2025-06-01'",
            // Not a date literal, an empty range, several statements, not SQL.
            "SELECT * FROM calls WHERE date = now()",
            "SELECT * FROM calls WHERE date = '2025-6-1x'",
            "SELECT * FROM calls WHERE date >= '2025-06-02' AND date <= '2025-06-01'",
            "SELECT * FROM calls WHERE date = '2025-06-01'; SELECT 1",
            "SELEKT *",
        ] {
            assert_eq!(hint(sql), None, "{sql}");
        }
    }
}
