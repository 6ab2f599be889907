-- One row per run of each sweep: trial, status, key parameters and the headline metrics side by side
-- (NULL where a run has no such metric, e.g. a FAILED trial).
SELECT s.name AS sweep, r.trial, r.id AS run_id, r.status, r.lam, r.gate_layers, r.lr, r.seed, a.flops,
       MAX(CASE WHEN m.split = 'valid' AND m.protocol = 'pop100' AND m.metric = 'ndcg' AND m.k = 10
                THEN m.value END) AS valid_pop100_ndcg10,
       MAX(CASE WHEN m.split = 'test' AND m.protocol = 'pop100' AND m.metric = 'ndcg' AND m.k = 10
                THEN m.value END) AS test_pop100_ndcg10,
       MAX(CASE WHEN m.split = 'test' AND m.protocol = 'full' AND m.metric = 'ndcg' AND m.k = 10
                THEN m.value END) AS test_full_ndcg10,
       MAX(CASE WHEN m.split = 'test' AND m.protocol = 'pop100' AND m.metric = 'recall' AND m.k = 10
                THEN m.value END) AS test_pop100_recall10
FROM dnsrec_sweeps s
JOIN dnsrec_runs r ON r.sweep_id = s.id
LEFT JOIN dnsrec_architectures a ON a.run_id = r.id
LEFT JOIN dnsrec_metrics m ON m.run_id = r.id
GROUP BY s.name, r.trial, r.id, r.status, r.lam, r.gate_layers, r.lr, r.seed, a.flops
ORDER BY s.name, r.trial, r.id;
