-- `calls`: one row per MCP call, counted once.
--
-- A call can be recorded by both sides (client and server span, paired by `call_id` within
-- the trace), by two client spans (FastMCP wraps the SDK's span), or twice by a retried
-- export. Spans that were never wire requests (`is_request = false`) are left out.
-- The row kept is the server's when there is one (it saw the outcome), then one that names
-- its target. Identity is taken from the best-attributed record of the call: a human
-- principal seen by a gateway or client wins over the OAuth client id a server saw.
CREATE VIEW calls AS
WITH ranked AS (
  SELECT
    *,
    row_number() OVER (
      PARTITION BY trace_id, call_id
      ORDER BY CASE side WHEN 'server' THEN 0 ELSE 1 END,
               CASE WHEN target IS NULL THEN 1 ELSE 0 END,
               observed_time, span_id
    ) AS call_rank,
    row_number() OVER (
      PARTITION BY trace_id, call_id
      ORDER BY CASE principal_kind WHEN 'human' THEN 0 WHEN 'service_account' THEN 1 ELSE 2 END,
               CASE side WHEN 'server' THEN 0 ELSE 1 END,
               observed_time, span_id
    ) AS identity_rank
  FROM tool_calls
  WHERE is_request
),
identity AS (
  SELECT trace_id, call_id, principal, principal_source, principal_kind, principal_reason,
         team, tenant, cost_center
  FROM ranked
  WHERE identity_rank = 1
)
SELECT
  r.* EXCLUDE (call_rank, identity_rank, principal, principal_source, principal_kind,
               principal_reason, team, tenant, cost_center),
  i.principal, i.principal_source, i.principal_kind, i.principal_reason,
  i.team, i.tenant, i.cost_center
FROM ranked r
JOIN identity i ON r.trace_id = i.trace_id AND r.call_id = i.call_id
WHERE r.call_rank = 1
