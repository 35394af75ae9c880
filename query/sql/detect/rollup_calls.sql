-- Hourly rollup of one day of `calls` (the session is cut to that day): one row per principal,
-- team, server, tool (or resource, prompt, method) and operation class in each hour. Every
-- behavioural rule (D1–D4, D7, D8) and the baseline profiles read these rows, never the calls
-- themselves, so a run reads each day of calls once.
SELECT CAST(hour AS INT) AS hour,
       coalesce(principal, '') AS principal,
       principal_kind,
       coalesce(team, '') AS team,
       coalesce(tenant, '') AS tenant,
       coalesce(server_name, '') AS server,
       coalesce(tool_name, resource_uri, prompt_name, method) AS item,
       operation_class,
       count(*) AS calls,
       sum(CASE WHEN outcome IN ('tool_error', 'protocol_error') THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS denied
FROM calls
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
-- Ordered so that rolling the same calls up again gives the same rows in the same order: the
-- persisted history (`state`) checks a day by the digest of its rows.
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
