"""scale_extrapolate.py — the arithmetic of docs/SCALING.md, "The paper's
scale": operation counts of dedup, retrieval and hierarchical k-means at
DINOv2's pool size, turned into time with the rates measured on this
machine (bench/scale_dedup.sh, bench/scale_hkmeans.sh) and on the H200
(docs/PERF.md).  Prints a Markdown table.  Edit the rates below to redo the
table for another machine.

    python3 scale_extrapolate.py
"""

# ---- rates measured here, per CPU-second of one core (docs/SCALING.md) ----
R_EXACT = 82e9      # exact dedup: 2 n^2 d flop / CPU-s (SGEMM tiles + top-64), 100k and 200k runs
R_LLOYD = 77e9      # one Lloyd iteration of dv2-hkmeans: 2 n k d flop / CPU-s (GEMM + argmin + sums)
R_SEED = 1.37e9     # k-means++ seeding of dv2-hkmeans: n k d (one pass over the points per seed) / CPU-s
R_IVF_TRAIN = 140e9  # FAISS IVF build: (25 x 2 n_train nlist d + 2 n nlist d) flop / CPU-s, apparent (1M run)
R_IVF_SCAN = 1.9e9  # FAISS IVF-Flat search: n_query x candidates x d multiply-adds / CPU-s, k = 64 (1M run)
# ---- accelerators ----
R_H200 = 36.6e12    # measured: exact k-NN on one H200, 2 nq nb d flop / s (docs/PERF.md: 20k x 1M x 384 in 0.42 s)
R_V100 = 14e12      # assumed: sustained FP32 SGEMM of one V100 (peak 15.7 TFLOP/s)
GPUS = 160          # the paper's 20 nodes x 8 V100-32GB
FAISS_IVFPQ_Q = 0.23e-3  # FAISS wiki: OPQ32,IVF262144,PQ32 over 1B vectors, s per query on 8 GPUs (8 Titan X)

DAY = 86400.0
rows = []


def row(task, ops, rate_cpu, gpu_rate=None, note=""):
    cpu = ops / rate_cpu
    g = "%.1f h" % (ops / (gpu_rate * GPUS) / 3600) if gpu_rate else "—"
    rows.append("| %s | %.2g | %.3g core-days | %s | %s |" % (task, ops, cpu / DAY, g, note))


# ---- copy dedup of the pool: 1.2B SSCD descriptors, 512-d, k = 64 ----
n, d = 1.2e9, 512
row("dedup, exact all pairs (1.2B x 512)", 2 * n * n * d, R_EXACT, R_V100, "flop; GPU: 160 V100 at 14 TFLOP/s")
nl, npr = 262144, 16
train = 25 * 2 * (256 * nl) * nl * d
row("dedup IVF262144: training (25 it., 256 pts/list)", train, R_IVF_TRAIN, R_V100, "flop")
row("dedup IVF262144: coarse assignment, add + search", 2 * 2 * n * nl * d, R_IVF_TRAIN, R_V100, "flop")
row("dedup IVF262144,Flat: scan, nprobe 16", n * npr * (n / nl) * d, R_IVF_SCAN, None,
    "multiply-adds; Flat index 2.5 TB")
rows.append("| dedup IVF262144,PQ32: scan, nprobe 16 (FAISS GPU figure) | — | — | %.1f h | 1.2B queries x 0.23 ms per 8 GPUs, 20 nodes; index 48 GB |"
            % (n * FAISS_IVFPQ_Q / 20 / 3600))

# ---- retrieval: 744M deduplicated images, ViT-H/16 features (1280-d assumed) ----
n, d = 744e6, 1280
row("retrieval: k-means 100k clusters, one Lloyd iteration", 2 * n * 1e5 * d, R_LLOYD, R_V100, "flop; iterations not stated")
nq = 14197086 + 1281167 + 1580470
row("retrieval: sample-based k-NN, exact (17.1M queries)", 2 * nq * n * d, R_EXACT, R_V100,
    "flop; pool 3.8 TB in float32, 24 GB per GPU when split over 160")

# ---- hierarchical k-means: 1.2B x 1024 (ViT-L), 10M / 500k / 50k / 10k, 50 Lloyd iterations ----
n, d, it = 1.2e9, 1024, 50
row("hkmeans level 1, 10M clusters: one Lloyd iteration", 2 * n * 1e7 * d, R_LLOYD, R_V100, "flop")
row("hkmeans level 1, 10M clusters: 50 iterations", it * 2 * n * 1e7 * d, R_LLOYD, R_V100, "flop")
row("hkmeans level 1, 10M clusters: k-means++ seeding (dv2: one pass per seed)", n * 1e7 * d, R_SEED, None,
    "point-dims; 10M passes over 4.9 TB")
row("hkmeans level 1 split (reference): 100k clusters, 50 it.", it * 2 * n * 1e5 * d, R_LLOYD, R_V100, "flop")
row("hkmeans level 1 split: then 100 per cluster, 50 it.", it * 2 * n * 100 * d, R_LLOYD, R_V100, "flop")
k2, s2 = 5e5, 10
lvl2 = (it + 1) * 2 * 1e7 * k2 * d + 10 * ((it * 2 * k2 * s2 * k2 * d) + 2 * 1e7 * k2 * d)
row("hkmeans level 2, 500k of 10M, 10 steps of 10 pts", lvl2, R_LLOYD, R_V100, "flop, upper bound (50 it. each)")
k3, s3 = 5e4, 5
lvl3 = (it + 1) * 2 * k2 * k3 * d + 10 * ((it * 2 * k3 * s3 * k3 * d) + 2 * k2 * k3 * d)
row("hkmeans level 3, 50k of 500k, 10 steps of 5 pts", lvl3, R_LLOYD, R_V100, "flop, upper bound")

print("| task | operations | this machine, 1 core | 160 V100 (GEMM-bound parts) | note |")
print("|---|---|---|---|---|")
print("\n".join(rows))
