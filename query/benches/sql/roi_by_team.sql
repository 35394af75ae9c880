-- ROI by team and ISO week (weeks start on Monday), 2025-06-02 to 2025-07-01: who used agents,
-- how much, how well, and across how many servers and tools.
--
-- Portable SQL: the benchmark runs this file unchanged on Calltrail (DataFusion) and DuckDB.
-- Shares are averages of 1.0/0.0 (DataFusion divides integers as integers). The week truncates
-- the start's UTC date, not `start_time` itself: DuckDB 2 reads the column as TIMESTAMPTZ_NS,
-- which its date_trunc does not take (and which it casts to DATE in the session time zone, so
-- it must run with TimeZone = 'UTC'); the week is cast back to DATE so both return one type.
SELECT team,
       CAST(date_trunc('week', CAST(start_time AS DATE)) AS DATE) AS week,
       count(DISTINCT principal) AS principals,
       count(*) AS calls,
       avg(CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END) AS success_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
       count(DISTINCT server_name) AS servers,
       count(DISTINCT tool_name) AS tools,
       avg(CASE WHEN principal_kind = 'human' THEN 1.0 ELSE 0.0 END) AS human_share
FROM calls
WHERE date >= '2025-06-02' AND date <= '2025-07-01'
GROUP BY 1, 2
ORDER BY 1 NULLS LAST, 2
