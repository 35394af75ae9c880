"""Chargeback and ROI computed by DuckDB from the Parquet Calltrail wrote: the other side of
tests/query_duckdb.rs. Only the `calls` view is shared (query/sql/calls.sql, run as it is);
every figure is computed here with DuckDB's own SQL and functions.

Usage: reports.py DATA_DIR CALLS_SQL FROM TO  -> JSON on stdout.
"""

import json
import sys

import duckdb

data_dir, calls_sql, start, end = sys.argv[1:5]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
for table in ("tool_calls", "llm_calls"):
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
        f"'{data_dir}/{table}/**/*.parquet', hive_partitioning = true)"
    )
with open(calls_sql) as f:
    con.execute(f.read())

# DuckDB reads nanosecond timestamps as TIMESTAMPTZ_NS, which it compares and truncates only
# once cast to its microsecond TIMESTAMPTZ.
st = "CAST(start_time AS TIMESTAMPTZ)"
lst = "CAST(l.start_time AS TIMESTAMPTZ)"
rng = f"{st} >= TIMESTAMPTZ '{start}' AND {st} < TIMESTAMPTZ '{end}'"

# The price table of tests/query_duckdb.rs, written out again.
call_price = """CASE WHEN server_name = 'payments-mcp' AND operation_class = 'write' THEN 0.01
                     WHEN tool_name LIKE 'delete%' THEN 0.02
                     ELSE 0.001 END"""
model = "coalesce(l.response_model, l.request_model, '')"
in_price = f"""CASE WHEN {model} LIKE 'gpt-4o-mini%' THEN 0.15
                    WHEN {model} LIKE 'gpt-4o%' THEN 2.5
                    WHEN {model} LIKE 'claude-sonnet-4%' THEN 3.0 ELSE 0.5 END"""
out_price = f"""CASE WHEN {model} LIKE 'gpt-4o-mini%' THEN 0.6
                     WHEN {model} LIKE 'gpt-4o%' THEN 10.0
                     WHEN {model} LIKE 'claude-sonnet-4%' THEN 15.0 ELSE 1.0 END"""

usage = con.execute(
    f"""
    WITH c AS (
      SELECT strftime(date_trunc('month', {st}), '%Y-%m') AS month, team,
             count(*) AS calls,
             sum(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS failed_calls,
             sum(duration_ms) / 1000.0 AS duration_s,
             sum({call_price}) AS call_cost
      FROM calls WHERE {rng} GROUP BY ALL
    ), t AS (SELECT trace_id, min(team) AS team FROM calls GROUP BY trace_id),
    k AS (
      SELECT strftime(date_trunc('month', {lst}), '%Y-%m') AS month,
             coalesce(l.team, t.team) AS team,
             sum(coalesce(l.input_tokens, 0)) AS input_tokens,
             sum(coalesce(l.output_tokens, 0)) AS output_tokens,
             sum(coalesce(l.input_tokens, 0) / 1000.0 * {in_price}
                 + coalesce(l.output_tokens, 0) / 1000.0 * {out_price}) AS token_cost
      FROM llm_calls l LEFT JOIN t ON l.trace_id = t.trace_id
      WHERE {lst} >= TIMESTAMPTZ '{start}' AND {lst} < TIMESTAMPTZ '{end}'
      GROUP BY ALL
    )
    SELECT coalesce(c.month, k.month) AS month, coalesce(c.team, k.team) AS team,
           coalesce(c.calls, 0), coalesce(c.failed_calls, 0), coalesce(c.duration_s, 0),
           coalesce(c.call_cost, 0), coalesce(k.input_tokens, 0), coalesce(k.output_tokens, 0),
           coalesce(k.token_cost, 0),
           3100.0 * coalesce(c.calls, 0) / sum(coalesce(c.calls, 0)) OVER (PARTITION BY coalesce(c.month, k.month))
    FROM c FULL JOIN k ON c.month = k.month AND c.team IS NOT DISTINCT FROM k.team
    ORDER BY 1, 2
    """
).fetchall()

roi = con.execute(
    f"""
    SELECT strftime(date_trunc('week', {st}), '%Y-%m-%d') AS week, team,
           count(DISTINCT principal), count(DISTINCT CASE WHEN principal_kind = 'human' THEN principal END),
           count(*), avg(CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END),
           quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95),
           count(DISTINCT server_name), count(DISTINCT tool_name),
           avg(CASE WHEN principal_kind = 'human' THEN 1.0 ELSE 0.0 END)
    FROM calls WHERE {rng} GROUP BY ALL ORDER BY 2, 1
    """
).fetchall()

json.dump(
    {
        "usage": [[None if v is None else (float(v) if not isinstance(v, str) else v) for v in r] for r in usage],
        "roi": [[None if v is None else (float(v) if not isinstance(v, str) else v) for v in r] for r in roi],
    },
    sys.stdout,
)
