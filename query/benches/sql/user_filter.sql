-- Ad hoc: everything one person's agents did on one day, in order (a Wednesday of the bench
-- data set; user0100 is a mid-popularity human principal with a few hundred calls a day).
--
-- Portable SQL: the benchmark runs this file unchanged on Calltrail (DataFusion) and DuckDB.
SELECT *
FROM calls
WHERE principal = 'user0100@corp.example'
  AND date = '2025-06-11'
ORDER BY start_time
