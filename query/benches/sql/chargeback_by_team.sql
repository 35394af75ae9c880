-- Monthly chargeback by team, 2025-06-02 to 2025-07-01 (the bench data set's 30 days).
--
-- Tool cost per call: a price by operation class (read 0.001, write 0.005, delete 0.01, anything
-- else 0.002) plus 0.0001 per second of duration. Token cost: 0.003 per 1k input tokens and
-- 0.015 per 1k output tokens of the LLM calls in the same trace, charged once per trace, to the
-- team that made most of the trace's calls (ties to the first team by name), so a trace that
-- crosses teams is never billed twice.
--
-- Portable SQL: the benchmark runs this file unchanged on Calltrail (DataFusion) and DuckDB.
-- Hence `/ 1000.0` (DataFusion divides integers as integers) and no engine-specific functions.
WITH call_costs AS (
  SELECT trace_id,
         team,
         count(*) AS calls,
         sum(CASE operation_class
               WHEN 'read' THEN 0.001
               WHEN 'write' THEN 0.005
               WHEN 'delete' THEN 0.01
               ELSE 0.002
             END
             + duration_ms / 1000.0 * 0.0001) AS tool_cost
  FROM calls
  WHERE date >= '2025-06-02' AND date <= '2025-07-01'
  GROUP BY trace_id, team
),
owners AS (
  SELECT trace_id, team, calls, tool_cost,
         row_number() OVER (PARTITION BY trace_id ORDER BY calls DESC, team) AS rank_in_trace
  FROM call_costs
),
trace_tokens AS (
  SELECT trace_id,
         sum(input_tokens) AS input_tokens,
         sum(output_tokens) AS output_tokens
  FROM llm_calls
  WHERE date >= '2025-06-02' AND date <= '2025-07-01'
  GROUP BY trace_id
),
charged AS (
  SELECT o.team,
         o.calls,
         o.tool_cost,
         coalesce(t.input_tokens, 0) AS input_tokens,
         coalesce(t.output_tokens, 0) AS output_tokens,
         coalesce(t.input_tokens, 0) / 1000.0 * 0.003
           + coalesce(t.output_tokens, 0) / 1000.0 * 0.015 AS token_cost
  FROM owners o
  LEFT JOIN trace_tokens t ON o.trace_id = t.trace_id AND o.rank_in_trace = 1
)
SELECT team,
       sum(calls) AS calls,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(tool_cost) AS tool_cost,
       sum(token_cost) AS token_cost,
       sum(tool_cost) + sum(token_cost) AS total_cost
FROM charged
GROUP BY team
ORDER BY team NULLS LAST
