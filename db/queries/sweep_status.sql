-- How each sweep is doing: runs per status, and the latest failure reason if any.
SELECT s.name AS sweep, r.status, COUNT(*) AS runs,
       MAX(r.recorded_at) AS last_recorded,
       MAX(CASE WHEN r.status = 'FAILED' THEN r.failure_reason END) AS a_failure_reason
FROM dnsrec_sweeps s
JOIN dnsrec_runs r ON r.sweep_id = s.id
GROUP BY s.name, r.status
ORDER BY s.name, r.status;
