-- Hourly LLM tokens of one day per principal and team (D6). An LLM call without attribution of
-- its own takes the best-attributed principal of the tool calls in its trace, as chargeback does.
WITH owners AS (
  SELECT trace_id, min(principal) AS principal, min(team) AS team, min(tenant) AS tenant
  FROM calls
  WHERE principal IS NOT NULL
  GROUP BY trace_id
)
SELECT CAST(l.hour AS INT) AS hour,
       coalesce(l.principal, o.principal, '') AS principal,
       coalesce(l.team, o.team, '') AS team,
       coalesce(l.tenant, o.tenant, '') AS tenant,
       sum(coalesce(l.input_tokens, 0) + coalesce(l.output_tokens, 0)) AS tokens
FROM llm_calls l
LEFT JOIN owners o ON l.trace_id = o.trace_id
GROUP BY 1, 2, 3, 4
-- Ordered so that rolling the same calls up again gives the same rows in the same order: the
-- persisted history (`state`) checks a day by the digest of its rows.
ORDER BY 1, 2, 3, 4
