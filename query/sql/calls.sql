-- `calls`: one row per MCP call, counted once.
--
-- Every server record that was a wire request is a call of its own (sibling server spans can
-- share a parent that is not a client span: an agent that only propagates context, a batched
-- HTTP request). Client records fold into the server record they caused, the one whose
-- `call_id` (its parent span id) is theirs; a client record with no server partner is a call
-- of its own, counted once per (trace, call_id) since FastMCP records each call with two client
-- spans. A retried export produces identical rows, folded first. Records that were never wire
-- requests (`is_request = false`) are left out.
--
-- Copies of one span share its start time, hence its `date`/`hour` partition: naming them in the
-- dedup's PARTITION BY changes nothing in the result but lets a filter on `date` or `hour` reach
-- the Parquet scan through the window, so a one-day query over `calls` reads one day.
--
-- Identity: a server row keeps its own principal unless a paired client record names a
-- better-attributed one (human over service account over unattributed): a person seen by the
-- gateway wins over the OAuth client id the server saw.
CREATE VIEW calls AS
WITH spans AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY date, hour, trace_id, span_id, side ORDER BY observed_time) AS copy
    FROM tool_calls
    WHERE is_request
  ) WHERE copy = 1
),
client_identity AS (
  SELECT * FROM (
    SELECT trace_id, call_id, principal, principal_source, principal_kind, principal_reason,
           team, tenant, cost_center,
           CASE principal_kind WHEN 'human' THEN 0 WHEN 'service_account' THEN 1 ELSE 2 END AS kind_rank,
           row_number() OVER (
             PARTITION BY trace_id, call_id
             ORDER BY CASE principal_kind WHEN 'human' THEN 0 WHEN 'service_account' THEN 1 ELSE 2 END,
                      observed_time, span_id
           ) AS identity_pick
    FROM spans
    WHERE side = 'client'
  ) WHERE identity_pick = 1
),
servers AS (
  SELECT s.*,
         ci.kind_rank IS NOT NULL
           AND ci.kind_rank < CASE s.principal_kind WHEN 'human' THEN 0 WHEN 'service_account' THEN 1 ELSE 2 END
           AS client_knows_better,
         ci.principal AS c_principal, ci.principal_source AS c_principal_source,
         ci.principal_kind AS c_principal_kind, ci.principal_reason AS c_principal_reason,
         ci.team AS c_team, ci.tenant AS c_tenant, ci.cost_center AS c_cost_center
  FROM spans s
  LEFT JOIN client_identity ci ON s.trace_id = ci.trace_id AND s.call_id = ci.call_id
  WHERE s.side = 'server'
),
client_only AS (
  SELECT c.* FROM (
    SELECT *, row_number() OVER (
      PARTITION BY trace_id, call_id
      ORDER BY CASE WHEN target IS NULL THEN 1 ELSE 0 END, observed_time, span_id
    ) AS pick
    FROM spans
    WHERE side = 'client'
  ) c
  LEFT JOIN (SELECT DISTINCT trace_id, call_id FROM spans WHERE side = 'server') paired
    ON c.trace_id = paired.trace_id AND c.call_id = paired.call_id
  WHERE c.pick = 1 AND paired.trace_id IS NULL
)
SELECT
  s.* EXCLUDE (copy, client_knows_better, principal, principal_source, principal_kind, principal_reason,
               team, tenant, cost_center, c_principal, c_principal_source, c_principal_kind,
               c_principal_reason, c_team, c_tenant, c_cost_center),
  CASE WHEN client_knows_better THEN c_principal ELSE principal END AS principal,
  CASE WHEN client_knows_better THEN c_principal_source ELSE principal_source END AS principal_source,
  CASE WHEN client_knows_better THEN c_principal_kind ELSE principal_kind END AS principal_kind,
  CASE WHEN client_knows_better THEN c_principal_reason ELSE principal_reason END AS principal_reason,
  CASE WHEN client_knows_better THEN coalesce(c_team, team) ELSE coalesce(team, c_team) END AS team,
  CASE WHEN client_knows_better THEN coalesce(c_tenant, tenant) ELSE coalesce(tenant, c_tenant) END AS tenant,
  CASE WHEN client_knows_better THEN coalesce(c_cost_center, cost_center) ELSE coalesce(cost_center, c_cost_center) END AS cost_center
FROM servers s
UNION ALL
SELECT
  c.* EXCLUDE (copy, pick, principal, principal_source, principal_kind, principal_reason,
               team, tenant, cost_center),
  ci.principal, ci.principal_source, ci.principal_kind, ci.principal_reason,
  ci.team, ci.tenant, ci.cost_center
FROM client_only c
JOIN client_identity ci ON c.trace_id = ci.trace_id AND c.call_id = ci.call_id
