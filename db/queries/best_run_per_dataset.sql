-- The best complete run of each dataset by test pop100 NDCG@10 (ties: fewer FLOPs, then the older run).
-- Runs as is in `sqlite3 runs/dnsrec.db < db/queries/best_run_per_dataset.sql` and in psql.
SELECT dataset, run_id, ndcg10, flops, params, lam, gate_layers, run_dir
FROM (
    SELECT r.dataset, r.id AS run_id, m.value AS ndcg10, a.flops, a.params, r.lam, r.gate_layers, r.run_dir,
           ROW_NUMBER() OVER (PARTITION BY r.dataset ORDER BY m.value DESC, a.flops ASC, r.id ASC) AS rank_in_dataset
    FROM dnsrec_runs r
    JOIN dnsrec_metrics m
      ON m.run_id = r.id AND m.split = 'test' AND m.protocol = 'pop100' AND m.metric = 'ndcg' AND m.k = 10
    LEFT JOIN dnsrec_architectures a ON a.run_id = r.id
    WHERE r.status = 'COMPLETE'
) ranked
WHERE rank_in_dataset = 1
ORDER BY dataset;
