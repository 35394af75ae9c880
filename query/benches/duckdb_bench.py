"""DuckDB side of the query_10m benchmark: times the same SQL files over the same Parquet files.

Run by `cargo bench -p calltrail-query --bench query_10m`, which passes the arguments; prints one
JSON object on stdout (timings, row counts and the result rows, for the cross-check). Progress
and errors go to stderr.

Views mirror Calltrail's tables: `tool_calls` and `llm_calls` read the Hive-partitioned files
with `date` and `hour` kept as strings (`hive_types_autocast = false`), as DataFusion exposes
them. The `calls` view is either
- `simple`: `SELECT * FROM tool_calls WHERE is_request`. For the bench data this is equivalent
  to query/sql/calls.sql: every row is a server-side request with unique trace and span ids, so
  that view's dedup keeps every row, no client record exists to pair, and every identity stays
  the server's own. It is what a DuckDB user would write against such data;
- `calltrail`: query/sql/calls.sql itself (DuckDB runs its SQL unchanged), to compare the two
  engines on the same plan shape.
"""

import argparse
import datetime
import decimal
import json
import sys
import time

import duckdb
import pyarrow as pa


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="store data directory")
    p.add_argument("--view", choices=["simple", "calltrail"], default="simple")
    p.add_argument("--calls-sql", help="query/sql/calls.sql, for --view calltrail")
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up")
    p.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    p.add_argument("query", nargs="+", help="NAME=PATH of a SQL file")
    return p.parse_args()


def jsonable(v):
    """A result value as JSON: numbers stay numbers, dates ISO text, bytes hex."""
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, dict, tuple)):
        return str(v)
    return v


def comparable(t):
    """Whether a result column of Arrow type `t` takes part in the cross-check."""
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
    )


def table(data, name):
    path = f"{data}/{name}/**/*.parquet"
    return (
        f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}', "
        f"hive_partitioning = true, hive_types_autocast = false)"
    )


def main():
    args = parse_args()
    con = duckdb.connect()

    def run(statement):
        # DuckDB 2 refuses new work while a result is unfetched, even a DDL statement's.
        con.execute(statement).fetchall()

    # date_trunc and CAST(... AS DATE) on TIMESTAMPTZ follow the session time zone; the store
    # and DataFusion work in UTC.
    run("SET TimeZone = 'UTC'")
    if args.threads:
        run(f"SET threads = {args.threads}")
    run(table(args.data, "tool_calls"))
    run(table(args.data, "llm_calls"))
    if args.view == "simple":
        run("CREATE VIEW calls AS SELECT * FROM tool_calls WHERE is_request")
    else:
        with open(args.calls_sql, encoding="utf-8") as f:
            run(f.read())
    out = {
        "duckdb_version": duckdb.__version__,
        "view": args.view,
        "threads": con.execute("SELECT current_setting('threads')").fetchall()[0][0],
        "queries": {},
    }
    for spec in args.query:
        name, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as f:
            sql = f.read()
        runs, result = [], None
        for i in range(args.runs + 1):
            started = time.perf_counter()
            result = con.sql(sql).to_arrow_table()
            elapsed = time.perf_counter() - started
            print(f"  duckdb ({args.view}) {name} run {i}: {elapsed:.3f} s", file=sys.stderr)
            if i > 0:
                runs.append(elapsed)
        # Only columns the cross-check compares: timestamps (nanoseconds do not convert to
        # Python), hashes and maps are left out.
        kept = result.select(
            [f.name for f in result.schema if comparable(f.type)]
        )
        rows = [[jsonable(v) for v in r.values()] for r in kept.to_pylist()]
        out["queries"][name] = {
            "runs": runs,
            "best": min(runs),
            "rows": result.num_rows,
            "columns": kept.column_names,
            "values": rows,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
