-- Per-server 15-minute buckets of one day of `calls`: the error and denied rates D5 follows.
SELECT CAST(hour AS INT) * 4 + CAST(date_part('minute', start_time) AS INT) / 15 AS quarter,
       coalesce(server_name, '') AS server,
       count(*) AS calls,
       sum(CASE WHEN outcome IN ('tool_error', 'protocol_error') THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS denied
FROM calls
GROUP BY 1, 2
-- Ordered so that rolling the same calls up again gives the same rows in the same order: the
-- persisted history (`state`) checks a day by the digest of its rows.
ORDER BY 1, 2
