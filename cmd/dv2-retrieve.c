/* dv2-retrieve — pick pool images that look like a curated query set
 * (DINOv2 §3): the N nearest pool images of every query image, or k-means
 * clusters of the pool that hold query images.  Prints TSV: pool id, query id
 * (or cluster), similarity. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "core/dist.h"
#include "search/embsrc.h"
#include "search/faissx.h"
#include "format/idlist.h"
#include "curate/retrieve.h"

#define MAX_INPUTS 256

typedef struct ctx {
    const char *queries, *keep, *index;
    const char *pool[MAX_INPUTS];
    int npool;
    int n, n_set, clusters, keep_repeats, nprobe, niter;
    int64_t per_cluster, min_queries, cap, block;
    const char *save_index, *load_index;
} ctx;

static const dv2_opt opts[] = {
    {"queries", 0, 1, "FILE.emb", "the curated query set (required)"},
    {"pool", 0, 1, "FILE.emb", "the uncurated pool (required; repeatable, rows concatenated)"},
    {"keep", 0, 1, "IDS", "restrict the pool to these ids (e.g. dv2-dedup output)"},
    {"n", 'n', 1, "N", "sample-based: the N nearest pool images of each query (default 4)"},
    {"clusters", 0, 1, "K", "cluster-based: k-means of the pool into K clusters"},
    {"per-cluster", 0, 1, "M", "cluster-based: images drawn from each used cluster (default 10000)"},
    {"min-queries", 0, 1, "Q", "cluster-based: use clusters holding more than Q query images (default 3)"},
    {"cap", 0, 1, "N", "cluster-based: at most N images in total (default 1000000; 0 = none)"},
    {"niter", 0, 1, "N", "cluster-based: k-means iterations (default 20)"},
    {"keep-repeats", 0, 0, NULL, "sample-based: list a pool image once per query that retrieved it"},
    {"index", 0, 1, "STR", "FAISS index factory string for the pool search (e.g. IVF4096,PQ32); default exact"},
    {"nprobe", 0, 1, "N", "inverted lists visited per query with --index (default 16)"},
    {"block", 0, 1, "ROWS", "query rows searched at once (default 1024 exact, 65536 with --index or cuda; bounds memory)"},
    {"save-index", 0, 1, "FILE", "write the FAISS index built for --index to FILE"},
    {"load-index", 0, 1, "FILE", "search with a FAISS index saved by --save-index over the same pool"},
    {NULL, 0, 0, NULL, NULL},
};

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    switch (idx) {
    case 0: c->queries = arg; break;
    case 1:
        if (c->npool == MAX_INPUTS) return dv2_usage_error("--pool: at most %d matrices", MAX_INPUTS);
        c->pool[c->npool++] = arg;
        break;
    case 2: c->keep = arg; break;
    case 3: if (dv2_parse_int(arg, 1, 2048, &c->n)) return dv2_usage_error("-n: expected 1..2048, got '%s'", arg);
        c->n_set = 1;
        break;
    case 4: if (dv2_parse_int(arg, 1, 1 << 24, &c->clusters)) return dv2_usage_error("--clusters: expected a positive integer, got '%s'", arg); break;
    case 5: if (dv2_parse_i64(arg, 1, INT64_MAX, &c->per_cluster)) return dv2_usage_error("--per-cluster: expected a positive integer, got '%s'", arg); break;
    case 6: if (dv2_parse_i64(arg, 0, INT64_MAX, &c->min_queries)) return dv2_usage_error("--min-queries: expected a non-negative integer, got '%s'", arg); break;
    case 7: if (dv2_parse_i64(arg, 0, INT64_MAX, &c->cap)) return dv2_usage_error("--cap: expected a non-negative integer, got '%s'", arg); break;
    case 8: if (dv2_parse_int(arg, 1, 10000, &c->niter)) return dv2_usage_error("--niter: expected 1..10000, got '%s'", arg); break;
    case 9: c->keep_repeats = 1; break;
    case 10: c->index = arg; break;
    case 11: if (dv2_parse_int(arg, 1, 1 << 20, &c->nprobe)) return dv2_usage_error("--nprobe: expected a positive integer, got '%s'", arg); break;
    case 12: if (dv2_parse_i64(arg, 1, 1 << 24, &c->block)) return dv2_usage_error("--block: expected 1..16777216, got '%s'", arg); break;
    case 13: c->save_index = arg; break;
    case 14: c->load_index = arg; break;
    }
    return 0;
}

static void on_progress(void *p, int64_t done, int64_t total) { dv2_progress_update(p, (uint64_t)done, 0); }

int main(int argc, char **argv) {
    ctx c = {.n = 4, .per_cluster = 10000, .min_queries = 3, .cap = 1000000, .block = 0, .nprobe = 16, .niter = 20};
    static const dv2_cli_spec spec = {
        "dv2-retrieve", "--queries CURATED.emb --pool POOL.emb [--keep IDS] [-n N | --clusters K] > selected.tsv",
        "Retrieval of pool images close to a curated query set: N nearest neighbours per query image, or "
        "k-means clusters of the pool that hold query images.  Output TSV: pool id, query id (or cluster), "
        "similarity.",
        "Sample-based output lists each pool image once, with its best query (ordered by pool row), unless\n"
        "--keep-repeats.  Build the training set with: cut -f1 selected.tsv | dv2-pack --select - ...",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_PROGRESS | DV2_CLI_SEED | DV2_CLI_DEVICE | DV2_CLI_THREADS, opts, dv2_knn_cuda_built};
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    if (cli.argi < argc) return dv2_usage_error("unexpected operand '%s' (matrices go after --queries and --pool)", argv[cli.argi]);
    if (!c.queries) return dv2_usage_error("--queries is required");
    if (c.npool == 0) return dv2_usage_error("--pool is required");
    if (c.clusters && c.n_set) return dv2_usage_error("-n and --clusters select different modes; give one");
    if (c.clusters && c.keep_repeats) return dv2_usage_error("--keep-repeats applies to sample-based retrieval (-n)");
    if ((c.save_index || c.load_index) && !c.index)
        return dv2_usage_error("--save-index and --load-index go with --index");
    if (c.save_index && c.load_index) return dv2_usage_error("--save-index and --load-index exclude each other");
    int cuda = strcmp(cli.device, "cuda") == 0;
    if (!strcmp(cli.device, "cpu-bf16"))
        return dv2_usage_error("--device cpu-bf16 is a model backend; the search runs on cpu or cuda");
    if (cuda && !dv2_knn_cuda_built())
        return dv2_usage_error("--device cuda: this build has no CUDA search (built without nvcc; use --device cpu)");
    if (cuda && c.index)
        return dv2_usage_error("--device cuda is the exact search on the GPU; --index runs FAISS on the CPU");
    if ((c.index || c.clusters) && !dv2_faissx_available())
        return dv2_usage_error("%s: this build has no FAISS; only exact sample-based search is available",
                               c.clusters ? "--clusters" : "--index");

    dv2_error err = {0};
    dv2_dist dist;
    rc = dv2_dist_init(&dist, 0, &err);
    if (rc < 0) return dv2_report(&err);
    int root = dist.rank == 0, exit_code = 0, nopen = 0, qopen = 0;
    dv2_embsrc *pool = calloc((size_t)c.npool, sizeof *pool), qs;
    dv2_vecsrc *parts = calloc((size_t)c.npool, sizeof *parts);
    uint64_t *ids = NULL;
    int64_t *rows = NULL;
    dv2_retrieve_out out = {0};
    dv2_idlist keep = {0};
    if (!pool || !parts) {
        rc = dv2_error_set(&err, DV2_ENOMEM, "out of memory");
        goto fail;
    }
    rc = dv2_embsrc_open(&qs, c.queries, &err);
    qopen = rc == 0;
    for (int i = 0; rc == 0 && i < c.npool; i++) {
        rc = dv2_embsrc_open(&pool[i], c.pool[i], &err);
        if (rc == 0) nopen++;
        if (rc == 0 && pool[i].dim != qs.dim)
            rc = dv2_error_set(&err, DV2_EINVAL, "%s: dimension %d does not match the queries %s (%d)", pool[i].name,
                               pool[i].dim, qs.name, qs.dim);
    }
    if (rc == 0 && c.keep) rc = dv2_idlist_read(&keep, c.keep, &err);
    if (dv2_dist_agree(&dist, rc, &err) < 0) goto fail;
    int64_t n = 0;
    for (int i = 0; i < c.npool; i++) {
        parts[i] = pool[i].src;
        n += pool[i].n;
    }
    ids = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    rows = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!ids || !rows) {
        rc = dv2_error_set(&err, DV2_ENOMEM, "out of memory for %lld ids", (long long)n);
        goto fail;
    }
    for (int64_t i = 0, o = 0; i < c.npool; o += pool[i].n, i++) memcpy(ids + o, pool[i].ids, sizeof(uint64_t) * (size_t)pool[i].n);
    dv2_vecsrc all, src;
    dv2_vecsrc_concat(&all, parts, c.npool);
    src = all;
    int64_t nsel = n;
    /* an id met twice (pools that overlap) is searched once, at its first row */
    if ((rc = dv2_idlist_first_rows(ids, n, rows, &nsel, &err)) < 0) goto fail;
    int subset = nsel < n || c.keep;
    if (nsel < n && root)
        dv2_warnf("%lld pool rows repeat an id met before (overlapping pools?); each id is retrieved once",
                  (long long)(n - nsel));
    if (c.keep) {
        dv2_idlist_sort_unique(&keep);
        int64_t nk = 0;
        for (int64_t i = 0; i < nsel; i++)
            if (dv2_idlist_contains(&keep, ids[rows[i]])) rows[nk++] = rows[i];
        nsel = nk;
        /* ids of the list that the pool does not hold */
        dv2_idlist have = {malloc(sizeof(uint64_t) * (size_t)(nsel ? nsel : 1)), 0};
        if (have.ids) {
            for (int64_t i = 0; i < nsel; i++) have.ids[have.n++] = ids[rows[i]];
            dv2_idlist_sort_unique(&have);
            size_t missing = 0;
            for (size_t i = 0; i < keep.n; i++) missing += !dv2_idlist_contains(&have, keep.ids[i]);
            if (missing && root)
                dv2_warnf("%zu of the %zu ids in %s are not in the pool (ignored)", missing, keep.n, c.keep);
            free(have.ids);
        }
    }
    if (subset) dv2_vecsrc_subset(&src, &all, rows, nsel);
    if (root && nsel == 0) dv2_warnf("the pool is empty%s: nothing to retrieve", c.keep ? " after --keep" : "");
    if (root && qs.n == 0) dv2_warnf("the query set %s is empty: nothing to retrieve", qs.name);

    dv2_retrieve_params p;
    dv2_retrieve_params_default(&p);
    p.n = c.n;
    p.keep_repeats = c.keep_repeats;
    p.clusters = c.clusters;
    p.per_cluster = c.per_cluster;
    p.min_queries = c.min_queries;
    p.cap = c.cap;
    p.niter = c.niter;
    p.seed = cli.seed;
    p.query_block = c.block;
    if (cuda) p.knn.backend = DV2_KNN_CUDA;
    if (c.index) {
        p.knn.backend = DV2_KNN_FAISS;
        p.knn.factory = c.index;
        p.knn.nprobe = c.nprobe;
        p.knn.index_load = c.load_index;
        p.knn.index_save = dist.rank == 0 ? c.save_index : NULL;
        p.knn.index_ids = ids;
        p.knn.index_rows = c.keep ? rows : NULL;
        p.knn.force = cli.force;
    }
    dv2_progress prog;
    dv2_progress_start(&prog, cli.progress && root, "queries", (uint64_t)qs.n, 0);
    p.progress = on_progress;
    p.progress_ctx = &prog;
    double t0 = dv2_now();
    if (nsel == 0 || qs.n == 0) {
        rc = 0;
    } else if (c.clusters) {
        if (nsel < c.clusters) {
            rc = dv2_error_set(&err, DV2_EINVAL, "--clusters %d: the pool has only %lld images", c.clusters, (long long)nsel);
        } else {
            if (root && nsel < 39LL * c.clusters)
                dv2_warnf("k-means of %lld images into %d clusters: fewer than 39 images per cluster", (long long)nsel, c.clusters);
            rc = dv2_retrieve_clusters(&out, &qs.src, &src, &p, &dist, &err);
        }
    } else {
        rc = dv2_retrieve_sample(&out, &qs.src, &src, &p, &dist, &err);
    }
    dv2_progress_end(&prog);
    if (rc < 0) goto fail;
    if (root) {
        dv2_afile af;
        rc = dv2_afile_open(&af, cli.output ? cli.output : "-", cli.force, &err);
        if (rc < 0) goto fail;
        for (int64_t i = 0; i < out.n; i++) {
            const dv2_retrieve_hit *h = &out.hits[i];
            int64_t prow = subset ? rows[h->pool_row] : h->pool_row;
            if (c.clusters)
                fprintf(af.f, "%" PRIu64 "\t%" PRId64 "\t%.6f\n", ids[prow], h->from, h->sim);
            else
                fprintf(af.f, "%" PRIu64 "\t%" PRIu64 "\t%.6f\n", ids[prow], qs.ids[h->from], h->sim);
        }
        rc = dv2_afile_commit(&af, &err);
        if (rc < 0) goto fail;
        double secs = dv2_now() - t0;
        if (!c.clusters)
            dv2_debugf("searcher built in %.3f s; %lld queries searched in %.3f s (%.0f queries/s)", out.build_seconds,
                       (long long)qs.n, out.search_seconds,
                       out.search_seconds > 0 ? (double)qs.n / dist.world / out.search_seconds : 0.0);
        if (c.clusters)
            dv2_infof("%lld queries, pool %lld images: %d clusters (k-means objective %.1f), %lld used, "
                      "%lld images selected, %lld dropped by the cap (%.1f s)",
                      (long long)qs.n, (long long)nsel, c.clusters, out.kmeans_objective, (long long)out.clusters_used,
                      (long long)out.n, (long long)out.capped, secs);
        else
            dv2_infof("%lld queries, pool %lld images: %lld (query, neighbour) pairs, %lld %s (%.1f s)",
                      (long long)qs.n, (long long)nsel, (long long)out.pairs, (long long)out.n,
                      c.keep_repeats ? "listed with repeats" : "unique pool images", secs);
    }
    goto out;
fail:
    exit_code = dv2_report(&err);
out:
    dv2_retrieve_out_free(&out);
    dv2_idlist_free(&keep);
    for (int i = 0; i < nopen; i++) dv2_embsrc_close(&pool[i]);
    if (qopen) dv2_embsrc_close(&qs);
    free(pool);
    free(parts);
    free(ids);
    free(rows);
    dv2_dist_finalize(&dist);
    return dv2_cli_finish(exit_code);
}
