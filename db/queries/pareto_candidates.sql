-- Pareto candidates per dataset: complete runs that no other run of the same dataset beats on both test
-- pop100 NDCG@10 (higher) and FLOPs (lower) while being strictly better on one. Cheapest first.
WITH points AS (
    SELECT r.id AS run_id, r.dataset, m.value AS ndcg10, a.flops
    FROM dnsrec_runs r
    JOIN dnsrec_metrics m
      ON m.run_id = r.id AND m.split = 'test' AND m.protocol = 'pop100' AND m.metric = 'ndcg' AND m.k = 10
    JOIN dnsrec_architectures a ON a.run_id = r.id
    WHERE r.status = 'COMPLETE'
)
SELECT p.dataset, p.run_id, p.ndcg10, p.flops
FROM points p
WHERE NOT EXISTS (
    SELECT 1 FROM points q
    WHERE q.dataset = p.dataset AND q.ndcg10 >= p.ndcg10 AND q.flops <= p.flops
      AND (q.ndcg10 > p.ndcg10 OR q.flops < p.flops)
)
ORDER BY p.dataset, p.flops, p.ndcg10 DESC, p.run_id;
