/* dv2-dedup — copy-detection deduplication of an embedding pool (DINOv2 App.
 * A.3): k-NN graph by cosine, edges above a threshold, connected components,
 * one representative per component (the first in pool order), and removal of
 * whole components that touch an evaluation set.  Prints the kept ids. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "curate/dedup.h"
#include "core/dist.h"
#include "search/embsrc.h"
#include "search/faissx.h"
#include "format/idlist.h"
#include "curate/report.h"
#include "embed/copydesc.h"

#define MAX_INPUTS 256

typedef struct ctx {
    int k, nprobe, report_groups;
    double threshold, against_threshold, margin; /* margin: -INFINITY off */
    int margin_rank;
    int64_t block;
    const char *against[MAX_INPUTS];
    int nagainst;
    const char *shards[MAX_INPUTS];
    int nshards;
    const char *groups, *report, *index, *against_index;
    int64_t cache;
    const char *save_index, *load_index;
} ctx;

static const dv2_opt opts[] = {
    {"neighbors", 'k', 1, "K", "neighbours searched per image (default 64)"},
    {"threshold", 't', 1, "S", "cosine above which two images are copies (default 0.6, or the pool header's dedup-threshold)"},
    {"against", 0, 1, "EVAL.emb", "drop components that touch this set (repeatable)"},
    {"against-threshold", 0, 1, "S", "cosine above which a pool image leaks an --against image (default 0.45, or the header's against-threshold)"},
    {"groups", 0, 1, "FILE", "write every row as TSV: id, component, representative, best similarity, status, leak"},
    {"index", 0, 1, "STR", "FAISS index factory string for the pool search (e.g. IVF4096,PQ32); default exact"},
    {"nprobe", 0, 1, "N", "inverted lists visited per query with --index (default 16)"},
    {"against-index", 0, 1, "STR", "FAISS factory string for the --against search; default exact"},
    {"block", 0, 1, "ROWS", "pool rows searched at once (default 1024 exact, 65536 with --index or cuda; bounds memory)"},
    {"report", 0, 1, "DIR", "write an HTML page of the largest groups and leakage hits (needs --shards)"},
    {"shards", 0, 1, "DATASET", "dataset holding the images, for --report thumbnails (repeatable)"},
    {"report-groups", 0, 1, "N", "groups shown in the report (default 50)"},
    {"cache", 0, 1, "SIZE", "exact search: keep a pool of up to SIZE float32 bytes converted in memory (default 2G; 0 streams)"},
    {"save-index", 0, 1, "FILE", "write the FAISS index built for --index to FILE"},
    {"load-index", 0, 1, "FILE", "search with a FAISS index saved by --save-index over the same pool"},
    {"margin", 0, 1, "M|off", "keep an edge only if its cosine also beats both ends' background (see --margin-rank) by M (default off)"},
    {"margin-rank", 0, 1, "R", "an image's background for --margin: the cosine of its R-th nearest neighbour (default 10, at most -k)"},
    {NULL, 0, 0, NULL, NULL},
};

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    int64_t v;
    switch (idx) {
    case 0: if (dv2_parse_int(arg, 1, 2048, &c->k)) return dv2_usage_error("--neighbors: expected 1..2048, got '%s'", arg); break;
    case 1: if (dv2_parse_double(arg, -1, 1, &c->threshold)) return dv2_usage_error("--threshold: expected -1..1, got '%s'", arg); break;
    case 2:
        if (c->nagainst == MAX_INPUTS) return dv2_usage_error("--against: at most %d sets", MAX_INPUTS);
        c->against[c->nagainst++] = arg;
        break;
    case 3: if (dv2_parse_double(arg, -1, 1, &c->against_threshold)) return dv2_usage_error("--against-threshold: expected -1..1, got '%s'", arg); break;
    case 4: c->groups = arg; break;
    case 5: c->index = arg; break;
    case 6: if (dv2_parse_int(arg, 1, 1 << 20, &c->nprobe)) return dv2_usage_error("--nprobe: expected a positive integer, got '%s'", arg); break;
    case 7: c->against_index = arg; break;
    case 8:
        if (dv2_parse_i64(arg, 1, 1 << 24, &v)) return dv2_usage_error("--block: expected 1..16777216, got '%s'", arg);
        c->block = v;
        break;
    case 9: c->report = arg; break;
    case 10:
        if (c->nshards == MAX_INPUTS) return dv2_usage_error("--shards: at most %d datasets", MAX_INPUTS);
        c->shards[c->nshards++] = arg;
        break;
    case 11: if (dv2_parse_int(arg, 1, 100000, &c->report_groups)) return dv2_usage_error("--report-groups: expected 1..100000, got '%s'", arg); break;
    case 12: {
        uint64_t sz;
        if (dv2_parse_size(arg, &sz) || sz > INT64_MAX) return dv2_usage_error("--cache: expected a size such as 512M, got '%s'", arg);
        c->cache = sz == 0 ? -1 : (int64_t)sz;
        break;
    }
    case 13: c->save_index = arg; break;
    case 14: c->load_index = arg; break;
    case 15:
        if (!strcmp(arg, "off")) c->margin = -INFINITY;
        else if (dv2_parse_double(arg, 0, 2, &c->margin)) return dv2_usage_error("--margin: expected 0..2 or off, got '%s'", arg);
        break;
    case 16: if (dv2_parse_int(arg, 1, 2048, &c->margin_rank)) return dv2_usage_error("--margin-rank: expected 1..2048, got '%s'", arg); break;
    }
    return 0;
}

static void on_progress(void *p, int64_t done, int64_t total) {
    dv2_progress_update(p, (uint64_t)done, 0);
}

/* Opens matrices into srcs[] and checks they share one dimension. */
static int open_all(dv2_embsrc *srcs, const char *const *paths, int n, int dim_want, dv2_error *err) {
    for (int i = 0; i < n; i++) {
        int rc = dv2_embsrc_open(&srcs[i], paths[i], err);
        if (rc < 0) {
            for (int j = 0; j < i; j++) dv2_embsrc_close(&srcs[j]);
            return rc;
        }
        int want = dim_want > 0 ? dim_want : srcs[0].dim;
        if (srcs[i].dim != want) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: dimension %d does not match %s (%d)", srcs[i].name,
                               srcs[i].dim, dim_want > 0 ? "the pool" : srcs[0].name, want);
            for (int j = 0; j <= i; j++) dv2_embsrc_close(&srcs[j]);
            return rc;
        }
    }
    return 0;
}

static void fmt_sim(char *buf, size_t n, float s) {
    if (isfinite(s)) snprintf(buf, n, "%.4f", s);
    else snprintf(buf, n, "-");
}

static int write_outputs(const dv2_cli *cli, const ctx *c, const uint64_t *ids, const uint64_t *against_ids,
                         const dv2_dedup_result *res, dv2_error *err) {
    dv2_afile af;
    int rc = dv2_afile_open(&af, cli->output ? cli->output : "-", cli->force, err);
    if (rc < 0) return rc;
    for (int64_t i = 0; i < res->n; i++)
        if (res->status[i] == DV2_DEDUP_KEPT) fprintf(af.f, "%" PRIu64 "\n", ids[i]);
    rc = dv2_afile_commit(&af, err);
    if (rc < 0 || !c->groups) return rc;
    rc = dv2_afile_open(&af, c->groups, cli->force, err);
    if (rc < 0) return rc;
    static const char *names[] = {"kept", "copy", "leak"};
    fprintf(af.f, "#id\tcomponent\trepresentative\tbest_sim\tstatus\tleak_sim\tleak_id\n");
    for (int64_t i = 0; i < res->n; i++) {
        char b[32], l[32], lid[24] = "-";
        fmt_sim(b, sizeof b, res->best_sim[i]);
        fmt_sim(l, sizeof l, res->leak_sim[i]);
        if (res->leak_row[i] >= 0 && against_ids) snprintf(lid, sizeof lid, "%" PRIu64, against_ids[res->leak_row[i]]);
        fprintf(af.f, "%" PRIu64 "\t%" PRId64 "\t%" PRIu64 "\t%s\t%s\t%s\t%s\n", ids[i], res->comp[i],
                ids[res->root[i]], b, names[res->status[i]], l, lid);
    }
    return dv2_afile_commit(&af, err);
}

int main(int argc, char **argv) {
    ctx c = {.k = 64, .nprobe = 16, .threshold = NAN, .against_threshold = NAN, .margin = -INFINITY, .margin_rank = 10, .block = 0, .report_groups = 50};
    static const dv2_cli_spec spec = {
        "dv2-dedup", "[options] POOL.emb... > kept.ids",
        "Copy-detection dedup of an embedding pool: k-NN graph by cosine, components above a threshold, "
        "one image kept per component; --against drops components near evaluation sets.",
        "The representative of a component is its first image in pool order (first matrix first).\n"
        "Run under mpirun -np R to split the search across processes; the output is the same.",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_PROGRESS | DV2_CLI_DEVICE | DV2_CLI_THREADS, opts, dv2_knn_cuda_built};
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    int npool = argc - cli.argi;
    if (npool < 1) return dv2_usage_error("no pool matrix given");
    if (npool > MAX_INPUTS) return dv2_usage_error("at most %d pool matrices", MAX_INPUTS);
    if (c.report && c.nshards == 0) return dv2_usage_error("--report needs --shards DATASET (where the images are)");
    if ((c.save_index || c.load_index) && !c.index)
        return dv2_usage_error("--save-index and --load-index go with --index");
    if (c.save_index && c.load_index) return dv2_usage_error("--save-index and --load-index exclude each other");
    if (c.margin > -INFINITY && c.margin_rank > c.k) return dv2_usage_error("--margin-rank %d is above --neighbors %d", c.margin_rank, c.k);
    int cuda = strcmp(cli.device, "cuda") == 0;
    if (!strcmp(cli.device, "cpu-bf16"))
        return dv2_usage_error("--device cpu-bf16 is a model backend; the search runs on cpu or cuda");
    if (cuda && !dv2_knn_cuda_built())
        return dv2_usage_error("--device cuda: this build has no CUDA search (built without nvcc; use --device cpu)");
    if (cuda && c.index)
        return dv2_usage_error("--device cuda is the exact search on the GPU; --index runs FAISS on the CPU");
    if ((c.index || c.against_index) && !dv2_faissx_available())
        return dv2_usage_error("--index: this build has no FAISS; only exact search is available");

    dv2_error err = {0};
    dv2_dist dist;
    rc = dv2_dist_init(&dist, 0, &err);
    if (rc < 0) return dv2_report(&err);
    int root = dist.rank == 0;
    dv2_embsrc *pool = calloc((size_t)npool, sizeof *pool);
    dv2_embsrc *ag = calloc((size_t)(c.nagainst ? c.nagainst : 1), sizeof *ag);
    dv2_vecsrc *parts = calloc((size_t)npool, sizeof *parts), *agparts = calloc((size_t)(c.nagainst ? c.nagainst : 1), sizeof *agparts);
    uint64_t *ids = NULL, *against_ids = NULL;
    dv2_dedup_part part = {0};
    dv2_dedup_result res = {0};
    int exit_code = DV2_EXIT_OK, opened = 0, agopened = 0;
    if (!pool || !ag || !parts || !agparts) {
        dv2_error_set(&err, DV2_ENOMEM, "out of memory");
        goto fail;
    }
    rc = open_all(pool, (const char *const *)argv + cli.argi, npool, 0, &err);
    opened = rc == 0;
    if (rc == 0) rc = open_all(ag, c.against, c.nagainst, pool[0].dim, &err);
    agopened = rc == 0;
    if (dv2_dist_agree(&dist, rc, &err) < 0) goto fail;
    /* thresholds not given: the descriptor's calibrated ones (dv2-embed
     * --copy records them in the header), else the paper's 0.6 / 0.45 */
    if (isnan(c.threshold) && !dv2_copydesc_threshold(pool[0].info.features, "dedup-threshold ", &c.threshold))
        c.threshold = 0.6;
    if (isnan(c.against_threshold) &&
        !dv2_copydesc_threshold(pool[0].info.features, "against-threshold ", &c.against_threshold))
        c.against_threshold = 0.45;
    int64_t n = 0, na = 0;
    for (int i = 0; i < npool; i++) {
        parts[i] = pool[i].src;
        n += pool[i].n;
    }
    for (int i = 0; i < c.nagainst; i++) {
        agparts[i] = ag[i].src;
        na += ag[i].n;
    }
    ids = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    against_ids = malloc(sizeof(uint64_t) * (size_t)(na ? na : 1));
    if (!ids || !against_ids) {
        dv2_error_set(&err, DV2_ENOMEM, "out of memory for %lld ids", (long long)n);
        goto fail;
    }
    for (int64_t i = 0, o = 0; i < npool; o += pool[i].n, i++) memcpy(ids + o, pool[i].ids, sizeof(uint64_t) * (size_t)pool[i].n);
    for (int64_t i = 0, o = 0; i < c.nagainst; o += ag[i].n, i++) memcpy(against_ids + o, ag[i].ids, sizeof(uint64_t) * (size_t)ag[i].n);
    if (n == 0 && root) dv2_warnf("the pool is empty: nothing to deduplicate");
    if (c.nagainst && na == 0 && root) dv2_warnf("the --against sets are empty: no leakage removal");
    {
        int64_t *first = malloc(sizeof(int64_t) * (size_t)(n ? n : 1)), nfirst = n;
        if (first && dv2_idlist_first_rows(ids, n, first, &nfirst, &err) == 0 && nfirst < n && root)
            dv2_warnf("%lld pool ids occur more than once; id lists will repeat them", (long long)(n - nfirst));
        free(first);
    }

    dv2_vecsrc poolsrc, agsrc;
    dv2_vecsrc_concat(&poolsrc, parts, npool);
    dv2_vecsrc_concat(&agsrc, agparts, c.nagainst);
    dv2_dedup_params p;
    dv2_dedup_params_default(&p);
    p.k = c.k;
    p.threshold = (float)c.threshold;
    p.against_threshold = (float)c.against_threshold;
    p.margin_on = c.margin > -INFINITY;
    p.margin = p.margin_on ? (float)c.margin : 0.0f;
    p.margin_rank = c.margin_rank;
    p.query_block = c.block;
    p.pool_knn.cache_bytes = p.against_knn.cache_bytes = c.cache;
    if (cuda) {
        p.pool_knn.backend = DV2_KNN_CUDA;
        if (!c.against_index) p.against_knn.backend = DV2_KNN_CUDA;
    }
    if (c.index) {
        p.pool_knn.backend = DV2_KNN_FAISS;
        p.pool_knn.factory = c.index;
        p.pool_knn.nprobe = c.nprobe;
        p.pool_knn.index_load = c.load_index;
        p.pool_knn.index_save = dist.rank == 0 ? c.save_index : NULL;
        p.pool_knn.index_ids = ids;
        p.pool_knn.force = cli.force;
    }
    if (c.against_index) {
        p.against_knn.backend = DV2_KNN_FAISS;
        p.against_knn.factory = c.against_index;
        p.against_knn.nprobe = c.nprobe;
    }
    int64_t q0, q1, qb = dv2_dedup_block(&p);
    dv2_dedup_split(n, qb, dist.rank, dist.world, &q0, &q1);
    dv2_progress prog;
    dv2_progress_start(&prog, cli.progress && root, "images", (uint64_t)(q1 - q0), 0);
    p.progress = on_progress;
    p.progress_ctx = &prog;
    dv2_debugf("pool %lld rows of dim %d in %d matrices%s; rank %d of %d searches rows %lld..%lld; "
               "exact search needs %.1f MiB per block",
               (long long)n, pool[0].dim, npool, pool[0].mapped ? " (mapped)" : "", dist.rank, dist.world,
               (long long)q0, (long long)q1,
               dv2_knn_exact_peak(qb, pool[0].dim, c.k, 8192) / 1048576.0);
    double t0 = dv2_now();
    rc = dv2_dedup_search(&part, &poolsrc, c.nagainst ? &agsrc : NULL, q0, q1, &p, &err);
    dv2_progress_end(&prog);
    if (dv2_dist_agree(&dist, rc, &err) < 0) goto fail;
    rc = dv2_dedup_merge(&res, &part, &dist, p.against_threshold, &err);
    if (rc < 0) goto fail;
    double secs = dv2_now() - t0;
    if (root) {
        if (write_outputs(&cli, &c, ids, against_ids, &res, &err) < 0) goto fail;
        dv2_infof("pool %lld images: kept %lld, removed %lld as copies, %lld as leakage; "
                  "%lld duplicate groups, largest %lld images; %lld edges above %g (%.1f s)",
                  (long long)n, (long long)res.kept, (long long)res.copies, (long long)res.leaked,
                  (long long)res.multi_components, (long long)(n ? res.largest : 0), (long long)res.edges,
                  c.threshold, secs);
        if (p.margin_on)
            dv2_infof("margin %g over the cosine of each image's neighbour %d: %lld edges above %g dropped",
                      c.margin, c.margin_rank, (long long)res.margin_dropped, c.threshold);
        /* Features that do not tell images apart make every image a copy of
         * every other: say so instead of handing on a pool of one. */
        float med = dv2_dedup_median_nn(&res);
        if (n >= 3 && med > DV2_DEDUP_DEGENERATE)
            dv2_warnf("degenerate pool: the median similarity of an image to its nearest neighbour "
                      "is %.4f; the features do not tell images apart (a random-init or broken "
                      "model?), so the dedup result is meaningless", (double)med);
        else if (n >= 10 && res.largest * 2 > n)
            dv2_warnf("one duplicate group holds %lld of %lld images (median nearest-neighbour "
                      "similarity %.3f): the features may not tell images apart at --threshold %.2f",
                      (long long)res.largest, (long long)n, (double)med, c.threshold);
        if (c.report) {
            dv2_report_opts ro = {c.shards, c.nshards, c.report_groups, 24, (float)c.threshold,
                                  (float)c.against_threshold, c.k, NULL, cli.force, c.margin_rank};
            if (dv2_report_dedup(c.report, &ro, ids, &res, against_ids, na, &err) < 0) goto fail;
            dv2_infof("report written to %s/index.html", c.report);
        }
    }
    goto out;
fail:
    exit_code = dv2_report(&err);
out:
    dv2_dedup_part_free(&part);
    dv2_dedup_result_free(&res);
    if (opened)
        for (int i = 0; i < npool; i++) dv2_embsrc_close(&pool[i]);
    if (agopened)
        for (int i = 0; i < c.nagainst; i++) dv2_embsrc_close(&ag[i]);
    free(pool);
    free(ag);
    free(parts);
    free(agparts);
    free(ids);
    free(against_ids);
    dv2_dist_finalize(&dist);
    return dv2_cli_finish(exit_code);
}
