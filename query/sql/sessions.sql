-- `sessions`: one row per agent session, from `calls`. Calls are grouped by their MCP session id
-- when they have one, else by trace (one agent task): `session_key` says which.
CREATE VIEW sessions AS
SELECT
  CASE WHEN session_id IS NOT NULL THEN 'session:' || session_id ELSE 'trace:' || trace_id END
    AS session_key,
  min(session_id) AS session_id,
  min(trace_id) AS first_trace_id,
  count(DISTINCT trace_id) AS traces,
  min(start_time) AS started,
  max(end_time) AS ended,
  count(*) AS calls,
  sum(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS ok_calls,
  sum(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS failed_calls,
  count(DISTINCT server_name) AS servers,
  count(DISTINCT tool_name) AS tools,
  sum(CASE WHEN operation_class IN ('write', 'delete', 'admin') THEN 1 ELSE 0 END) AS changes,
  count(DISTINCT principal) AS principals,
  min(principal) AS principal,
  min(principal_kind) AS principal_kind,
  min(team) AS team,
  min(tenant) AS tenant,
  min(cost_center) AS cost_center
FROM calls
GROUP BY 1
