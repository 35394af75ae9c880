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
-- Copies of one span share its `event_id` (a hash of trace, span and side) and its start time,
-- hence its `date`/`hour` partition. The fold keeps the first observed copy (ties, as when one
-- request carries a span twice, go to the least `chain_hash`, unique per stored row): groupings
-- and joins over a few narrow columns, not a window, because a window with one partition per
-- span costs a slice of every column per span (seconds per million wide rows). Grouping by
-- `date`/`hour` too changes nothing in the result but lets a filter on them reach the Parquet
-- scans on every side of the joins.
-- Likewise the pick among client records is a window over a few narrow columns, joined back.
--
-- Identity: a server row keeps its own principal unless a paired client record names a
-- better-attributed one (human over service account over unattributed): a person seen by the
-- gateway wins over the OAuth client id the server saw.
CREATE VIEW calls AS
WITH firsts AS (
  SELECT date, hour, event_id, min(observed_time) AS first_seen
  FROM tool_calls
  WHERE is_request
  GROUP BY date, hour, event_id
),
copies AS (
  SELECT t.date, t.hour, min(t.chain_hash) AS chain_hash
  FROM tool_calls t
  JOIN firsts f
    ON t.date = f.date AND t.hour = f.hour AND t.event_id = f.event_id
   AND t.observed_time = f.first_seen
  WHERE t.is_request
  GROUP BY t.date, t.hour, t.event_id
),
spans AS (
  SELECT t.*
  FROM tool_calls t
  JOIN copies c ON t.date = c.date AND t.hour = c.hour AND t.chain_hash = c.chain_hash
  WHERE t.is_request
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
client_pick AS (
  SELECT trace_id, span_id FROM (
    SELECT trace_id, span_id, row_number() OVER (
      PARTITION BY trace_id, call_id
      ORDER BY CASE WHEN target IS NULL THEN 1 ELSE 0 END, observed_time, span_id
    ) AS pick
    FROM spans
    WHERE side = 'client'
  ) WHERE pick = 1
),
client_only AS (
  SELECT c.*
  FROM spans c
  JOIN client_pick p ON c.trace_id = p.trace_id AND c.span_id = p.span_id
  LEFT JOIN (SELECT DISTINCT trace_id, call_id FROM spans WHERE side = 'server') paired
    ON c.trace_id = paired.trace_id AND c.call_id = paired.call_id
  WHERE c.side = 'client' AND paired.trace_id IS NULL
)
SELECT
  s.* EXCLUDE (client_knows_better, principal, principal_source, principal_kind, principal_reason,
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
  c.* EXCLUDE (principal, principal_source, principal_kind, principal_reason,
               team, tenant, cost_center),
  ci.principal, ci.principal_source, ci.principal_kind, ci.principal_reason,
  ci.team, ci.tenant, ci.cost_center
FROM client_only c
JOIN client_identity ci ON c.trace_id = ci.trace_id AND c.call_id = ci.call_id
