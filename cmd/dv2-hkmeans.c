/* dv2-hkmeans — curation without a seed set (Vo et al. 2024): hierarchical
 * k-means of a pool with resampling, saved as a tree directory, and
 * hierarchical balanced sampling of a target size from that tree.  Prints
 * the selected pool ids, one per line.
 *
 * Its own program rather than a mode of dv2-retrieve: it takes no query set,
 * keeps state between runs (the tree, resumable per level) and has two
 * phases that run separately (cluster once, sample many targets).  Under
 * mpirun the assignment and seeding work is split across the processes and
 * the tree is byte-identical to one process. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/afile.h"
#include "core/dist.h"
#include "curate/hkmeans.h"
#include "format/idlist.h"
#include "format/matrix.h"

typedef struct ctx {
    const char *tree, *keep;
    int levels, nk, nsteps, nsample;
    int k[DV2_HKM_MAX_LEVELS], steps[DV2_HKM_MAX_LEVELS], sample[DV2_HKM_MAX_LEVELS];
    int resample_closest, sampling_closest, niter, multiplier;
    int64_t target;
} ctx;

static const dv2_opt opts[] = {
    {"tree", 0, 1, "DIR", "the cluster tree: written when a POOL is given, read for --target (required)"},
    {"levels", 0, 1, "L", "number of levels (default: the length of --clusters)"},
    {"clusters", 0, 1, "K1,K2,...", "clusters per level, bottom (level 1) first"},
    {"steps", 0, 1, "S1,...", "resampling steps per level (one value: every level; default 10)"},
    {"sample-size", 0, 1, "N1,...", "points per cluster in a resampling step (one value: every level; default 10)"},
    {"resample", 0, 1, "HOW", "which points a resampling step takes: closest (default) or random"},
    {"niter", 0, 1, "N", "Lloyd iterations per k-means (default 50)"},
    {"target", 0, 1, "N", "sample N images from the tree and print their ids"},
    {"sampling", 0, 1, "HOW", "points taken in a level-1 cluster: random (default) or closest"},
    {"keep", 0, 1, "IDS", "cluster only the pool rows whose id is listed (e.g. dv2-dedup output)"},
    {"multiplier", 0, 1, "M", "an image may be sampled up to M times (its id printed as often; default 1)"},
    {NULL, 0, 0, NULL, NULL},
};

static int parse_how(const char *arg, const char *opt, int *closest) {
    if (!strcmp(arg, "closest") || !strcmp(arg, "c")) *closest = 1;
    else if (!strcmp(arg, "random") || !strcmp(arg, "r")) *closest = 0;
    else return dv2_usage_error("%s: expected closest or random, got '%s'", opt, arg);
    return 0;
}

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    switch (idx) {
    case 0: c->tree = arg; break;
    case 1: if (dv2_parse_int(arg, 1, DV2_HKM_MAX_LEVELS, &c->levels)) return dv2_usage_error("--levels: expected 1..%d, got '%s'", DV2_HKM_MAX_LEVELS, arg); break;
    case 2: if (dv2_parse_int_list(arg, 1, 1 << 30, c->k, DV2_HKM_MAX_LEVELS, &c->nk)) return dv2_usage_error("--clusters: expected up to %d positive integers separated by commas, got '%s'", DV2_HKM_MAX_LEVELS, arg); break;
    case 3: if (dv2_parse_int_list(arg, 0, 1 << 20, c->steps, DV2_HKM_MAX_LEVELS, &c->nsteps)) return dv2_usage_error("--steps: expected integers >= 0 separated by commas, got '%s'", arg); break;
    case 4: if (dv2_parse_int_list(arg, 1, 1 << 24, c->sample, DV2_HKM_MAX_LEVELS, &c->nsample)) return dv2_usage_error("--sample-size: expected positive integers separated by commas, got '%s'", arg); break;
    case 5: return parse_how(arg, "--resample", &c->resample_closest);
    case 6: if (dv2_parse_int(arg, 1, 100000, &c->niter)) return dv2_usage_error("--niter: expected 1..100000, got '%s'", arg); break;
    case 7: if (dv2_parse_i64(arg, 0, INT64_MAX, &c->target)) return dv2_usage_error("--target: expected a count, got '%s'", arg); break;
    case 8: return parse_how(arg, "--sampling", &c->sampling_closest);
    case 9: c->keep = arg; break;
    case 10: if (dv2_parse_int(arg, 1, 1 << 20, &c->multiplier)) return dv2_usage_error("--multiplier: expected 1..%d, got '%s'", 1 << 20, arg); break;
    }
    return 0;
}

/* the meter of the level being built (--progress, or stderr a terminal) */
typedef struct meter {
    dv2_progress p;
    int level;
    char what[48];
} meter;

/* called on rank 0 only */
static void on_progress(void *vm, int level, uint64_t done, uint64_t total) {
    meter *m = vm;
    if (level != m->level) {
        dv2_progress_end(&m->p);
        snprintf(m->what, sizeof m->what, "distances of level %d", level);
        dv2_progress_start(&m->p, m->p.enabled, m->what, total, 0);
        m->level = level;
    }
    dv2_progress_update(&m->p, done, 0);
}

/* called on rank 0 only */
static void on_level(void *vctx, const dv2_hkm_level_info *in) {
    meter *m = vctx;
    dv2_progress_end(&m->p);
    if (in->reused) {
        dv2_infof("level %d: reused (saved with the same input and parameters)", in->level);
        return;
    }
    const dv2_hkm_seed_stats *s = &in->seeding;
    dv2_infof("level %d: clustered in %.1f s (%lld empty clusters; k-means++ seeding %.1f s, %.1f%% of its distances "
              "computed)",
              in->level, in->seconds, (long long)in->empty, s->seconds,
              s->full ? 100.0 * (double)s->computed / (double)s->full : 0.0);
}

/* Fills one per-level list from a one-value or a full list. */
static int spread(int *v, int n, int levels, int dflt, const char *opt) {
    if (n == 0) {
        for (int i = 0; i < levels; i++) v[i] = dflt;
    } else if (n == 1) {
        for (int i = 1; i < levels; i++) v[i] = v[0];
    } else if (n != levels) {
        return dv2_usage_error("%s: %d values for %d levels", opt, n, levels);
    }
    return 0;
}

/* Keeps the rows of m (loaded into memory, ld = dim) whose id is in the
 * list at path, in pool order. */
static int keep_rows(dv2_matrix *m, const char *path, dv2_error *err) {
    dv2_idlist keep = {0};
    int rc = dv2_idlist_read(&keep, path, err);
    if (rc) return rc;
    dv2_idlist_sort_unique(&keep);
    size_t n = 0;
    for (size_t i = 0; i < m->rows; i++) {
        if (!dv2_idlist_contains(&keep, m->ids[i])) continue;
        if (n != i) {
            memmove(m->vecs + n * m->ld, m->vecs + i * m->ld, m->dim * sizeof *m->vecs);
            m->ids[n] = m->ids[i];
            m->labels[n] = m->labels[i];
        }
        n++;
    }
    dv2_debugf("--keep %s: %zu of %zu pool rows", path, n, m->rows);
    if (keep.n > n) dv2_warnf("%zu of the %zu ids in %s are not in the pool (ignored)", keep.n - n, keep.n, path);
    m->rows = n;
    dv2_idlist_free(&keep);
    return 0;
}

static int build(const ctx *c, const dv2_cli *cli, const char *pool, const dv2_dist *dist) {
    dv2_hkm_params p;
    dv2_hkm_params_default(&p);
    p.levels = c->levels ? c->levels : c->nk;
    if (c->nk != p.levels) return dv2_usage_error("--levels %d but --clusters lists %d", p.levels, c->nk);
    memcpy(p.k, c->k, sizeof p.k);
    memcpy(p.steps, c->steps, sizeof p.steps);
    memcpy(p.sample, c->sample, sizeof p.sample);
    int rc;
    if ((rc = spread(p.steps, c->nsteps, p.levels, 10, "--steps")) ||
        (rc = spread(p.sample, c->nsample, p.levels, 10, "--sample-size")))
        return rc;
    for (int l = 1; l < p.levels; l++)
        if (p.k[l] > p.k[l - 1])
            return dv2_usage_error("--clusters: level %d has more clusters (%d) than the level below (%d)", l + 1, p.k[l], p.k[l - 1]);
    p.resample_closest = c->resample_closest;
    p.niter = c->niter;
    p.seed = cli->seed;
    p.force = cli->force;
    dv2_error err = {0};
    dv2_matrix m;
    if ((rc = dv2_matrix_load(&m, pool, DV2_MATRIX_LOAD_NOMAP, &err))) return dv2_report(&err);
    if (c->keep && (rc = keep_rows(&m, c->keep, &err))) {
        dv2_matrix_free(&m);
        return dv2_report(&err);
    }
    /* a NaN or an infinity would silently take a centroid (or every
     * distance) with it: refuse the pool, naming the row */
    if (dv2_matrix_check_finite(m.vecs, m.ld, m.dim, (int64_t)m.rows, m.ids, 0, pool, &err)) {
        dv2_matrix_free(&m);
        return dv2_report(&err);
    }
    if ((int64_t)m.rows < p.k[0]) {
        dv2_matrix_free(&m);
        dv2_errorf("%s: %zu rows cannot make %d clusters", pool, m.rows, p.k[0]);
        return DV2_EXIT_ERROR;
    }
    if (dist->world > 1)
        dv2_debugf("rank %d of %d: assigns every %d-th block of rows", dist->rank, dist->world, dist->world);
    meter mt = {.p = {.enabled = cli->progress && dist->rank == 0}};
    p.progress = on_progress;
    p.progress_ctx = &mt;
    double t0 = dv2_now();
    rc = dv2_hkm_build(c->tree, m.vecs, m.ids, (int64_t)m.rows, (int)m.dim, &p, dist, on_level, &mt, &err);
    dv2_progress_end(&mt.p);
    size_t rows = m.rows;
    dv2_matrix_free(&m);
    if (rc) return dv2_report(&err);
    if (dist->rank == 0)
        dv2_infof("tree of %zu images, %d levels, in %s (%.1f s, %d process%s)", rows, p.levels, c->tree,
                  dv2_now() - t0, dist->world, dist->world > 1 ? "es" : "");
    return 0;
}

static int sample(const ctx *c, const dv2_cli *cli) {
    dv2_error err = {0};
    dv2_hkm_tree t;
    int rc = dv2_hkm_load(&t, c->tree, &err);
    if (rc) return dv2_report(&err);
    uint64_t *ids = NULL;
    int64_t n = 0;
    rc = dv2_hkm_sample(&ids, &n, &t, c->target, c->sampling_closest, c->multiplier, cli->seed, &err);
    if (!rc) {
        dv2_afile af;
        rc = dv2_afile_open(&af, cli->output ? cli->output : "-", cli->force, &err);
        if (!rc) {
            for (int64_t i = 0; i < n; i++) fprintf(af.f, "%" PRIu64 "\n", ids[i]);
            rc = dv2_afile_commit(&af, &err);
        }
    }
    int64_t pool = t.n;
    int levels = t.levels;
    free(ids);
    dv2_hkm_tree_free(&t);
    if (rc) return dv2_report(&err);
    if (c->multiplier == 1 && c->target > pool)
        dv2_warnf("--target %lld is larger than the pool (%lld): all images selected", (long long)c->target, (long long)pool);
    else if (c->target > pool * c->multiplier)
        dv2_warnf("--target %lld is larger than the pool (%lld) times --multiplier %d: every image selected %d times",
                  (long long)c->target, (long long)pool, c->multiplier, c->multiplier);
    if (c->multiplier == 1)
        dv2_infof("%lld of %lld images sampled from a %d-level tree (%s)", (long long)n, (long long)pool, levels,
                  c->sampling_closest ? "closest first" : "random");
    else
        dv2_infof("%lld samples of %lld images from a %d-level tree (%s, up to %d times each)", (long long)n,
                  (long long)pool, levels, c->sampling_closest ? "closest first" : "random", c->multiplier);
    return 0;
}

int main(int argc, char **argv) {
    ctx c = {.resample_closest = 1, .niter = 50, .target = -1, .multiplier = 1};
    static const dv2_cli_spec spec = {
        "dv2-hkmeans", "--tree DIR [--clusters K1,K2,... [--keep IDS] [options] POOL.emb] [--target N] > selected.ids",
        "Curation without a seed set: hierarchical k-means of a pool with resampling (the cluster tree is "
        "saved in DIR, resumable per level), then hierarchical balanced sampling of N images.",
        "With POOL.emb the tree is built (levels saved with the same input and parameters are reused;\n"
        "-f recomputes them); with --target N images are sampled from the tree and their ids printed.\n"
        "Both may be given in one run.",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_SEED | DV2_CLI_THREADS | DV2_CLI_PROGRESS, opts, NULL};
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    int npool = argc - cli.argi;
    if (!c.tree) return dv2_usage_error("--tree DIR is required");
    if (npool > 1) return dv2_usage_error("one pool matrix (got %d)", npool);
    if (npool == 0 && c.target < 0) return dv2_usage_error("nothing to do: give POOL.emb to cluster, --target N to sample, or both");
    if (npool == 1 && c.nk == 0) return dv2_usage_error("--clusters K1,K2,... is required to build a tree");
    if (npool == 0 && (c.nk || c.nsteps || c.nsample || c.levels))
        return dv2_usage_error("--clusters, --levels, --steps and --sample-size need a POOL.emb to cluster");
    if (c.keep && npool == 0) return dv2_usage_error("--keep restricts a POOL.emb to cluster: give one");
    if (c.keep && !strcmp(c.keep, "-") && !strcmp(argv[cli.argi], "-"))
        return dv2_usage_error("--keep - and the pool - cannot both read stdin");
    dv2_cleanup_install();
    dv2_error err = {0};
    dv2_dist dist;
    if (dv2_dist_init(&dist, 0, &err) < 0) return dv2_report(&err);
    rc = 0;
    if (npool == 1) rc = build(&c, &cli, argv[cli.argi], &dist);
    /* sampling is cheap: rank 0 alone reads the tree and writes the ids */
    if (!rc && c.target >= 0 && dist.rank == 0) rc = sample(&c, &cli);
    dv2_dist_finalize(&dist);
    return dv2_cli_finish(rc);
}
