/* dv2-probe — frozen-feature evaluation of embedding matrices: the k-NN
 * classifier of the official evaluation, a logistic-regression linear probe
 * with a held-out C sweep, and instance retrieval (mAP, recall@k).  The
 * training matrix is loaded (mapped when possible); the test matrix is
 * streamed in blocks, so it may come from a pipe.  Prints a table, or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "core/json.h"
#include "eval/probe_eval.h"
#include "search/knn.h"

typedef struct ctx {
    const char *train, *test;
    int knn, linear, retrieval, json, uniform, full_grid, max_iter;
    int ks[DV2_PROBE_MAX_KS], nk;
    double temperature, holdout;
    double cs[64];
    int ncs;
    int block;
} ctx;

static const dv2_opt opts[] = {
    {"train", 0, 1, "TRAIN.emb", "training matrix (labels, database for retrieval)"},
    {"test", 0, 1, "TEST.emb", "test matrix (queries); '-' reads stdin"},
    {"knn", 0, 1, "K,...", "k-NN classifier with these k (default 10,20,100,200)"},
    {"temperature", 0, 1, "T", "softmax temperature of the k-NN weights (default 0.07)"},
    {"knn-weights", 0, 1, "W", "softmax (default, the official vote) or uniform (majority vote)"},
    {"linear", 0, 0, NULL, "linear probe: logistic regression, C chosen on held-out training rows"},
    {"C", 0, 1, "C,...", "the C values to try (default: 10^-6..10^5 by decades)"},
    {"c-grid", 0, 1, "G", "short (12 decades, default) or full (the official 45 values)"},
    {"max-iter", 0, 1, "N", "L-BFGS iterations per fit (default 1000)"},
    {"holdout", 0, 1, "F", "fraction of training rows held out to choose C (default 0.1)"},
    {"retrieval", 0, 0, NULL, "instance retrieval: mAP and recall@1,5,10 (labels = instance ids)"},
    {"json", 0, 0, NULL, "print JSON instead of a table"},
    {"block", 0, 1, "ROWS", "test rows per block (default 1024)"},
    {NULL, 0, 0, NULL, NULL},
};

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    switch (idx) {
    case 0: c->train = arg; break;
    case 1: c->test = arg; break;
    case 2:
        if (dv2_parse_int_list(arg, 1, 100000, c->ks, DV2_PROBE_MAX_KS, &c->nk) || c->nk < 1)
            return dv2_usage_error("--knn: expected a list of k in 1..100000, got '%s'", arg);
        c->knn = 1;
        break;
    case 3:
        if (dv2_parse_double(arg, 1e-6, 1e6, &c->temperature))
            return dv2_usage_error("--temperature: expected a positive number, got '%s'", arg);
        break;
    case 4:
        if (strcmp(arg, "softmax") == 0) c->uniform = 0;
        else if (strcmp(arg, "uniform") == 0) c->uniform = 1;
        else return dv2_usage_error("--knn-weights: expected softmax or uniform, got '%s'", arg);
        break;
    case 5: c->linear = 1; break;
    case 6: {
        char *dup = strdup(arg), *save = NULL;
        c->ncs = 0;
        for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (c->ncs == 64 || dv2_parse_double(t, 1e-12, 1e12, &c->cs[c->ncs])) {
                free(dup);
                return dv2_usage_error("--C: expected up to 64 positive numbers, got '%s'", arg);
            }
            c->ncs++;
        }
        free(dup);
        if (c->ncs == 0) return dv2_usage_error("--C: no value given");
        c->linear = 1;
        break;
    }
    case 7:
        if (strcmp(arg, "short") == 0) c->full_grid = 0;
        else if (strcmp(arg, "full") == 0) c->full_grid = 1;
        else return dv2_usage_error("--c-grid: expected short or full, got '%s'", arg);
        break;
    case 8:
        if (dv2_parse_int(arg, 1, 1000000, &c->max_iter))
            return dv2_usage_error("--max-iter: expected 1..1000000, got '%s'", arg);
        break;
    case 9:
        if (dv2_parse_double(arg, 0.001, 0.9, &c->holdout))
            return dv2_usage_error("--holdout: expected 0.001..0.9, got '%s'", arg);
        break;
    case 10: c->retrieval = 1; break;
    case 11: c->json = 1; break;
    case 12:
        if (dv2_parse_int(arg, 1, 1 << 20, &c->block))
            return dv2_usage_error("--block: expected 1..1048576, got '%s'", arg);
        break;
    }
    return 0;
}

static double pct(uint64_t a, uint64_t n) { return n ? 100.0 * (double)a / (double)n : 0.0; }

typedef dv2_probe_eval results;

static void print_json(FILE *f, const ctx *c, const results *r) {
    fprintf(f, "{\"train\": {\"path\": ");
    dv2_json_write_string(f, c->train);
    fprintf(f, ", \"rows\": %zu, \"dim\": %zu, \"model\": ", r->train.rows, r->train.dim);
    dv2_json_write_string(f, r->train.info.model);
    fprintf(f, ", \"features\": ");
    dv2_json_write_string(f, r->train.info.features);
    fprintf(f, "},\n \"test\": {\"path\": ");
    dv2_json_write_string(f, c->test);
    fprintf(f, ", \"rows\": %" PRIu64 "}", r->test_rows);
    if (c->knn) {
        fprintf(f, ",\n \"knn\": {\"temperature\": %.15g, \"weights\": \"%s\", \"neighbours\": %d, "
                   "\"classes\": %d, \"results\": [",
                c->temperature, c->uniform ? "uniform" : "softmax", r->knn.kmax, r->knn.nclass);
        for (int i = 0; i < r->knn.nk; i++)
            fprintf(f, "%s{\"k\": %d, \"top1\": %.4f, \"top5\": %.4f}", i ? ", " : "", r->knn.ks[i],
                    pct(r->knn.top1[i], r->knn.n), pct(r->knn.top5[i], r->knn.n));
        fprintf(f, "]}");
    }
    if (c->linear) {
        fprintf(f, ",\n \"linear\": {\"C\": %.15g, \"top1\": %.4f, \"top5\": %.4f, \"fit_rows\": %zu, "
                   "\"holdout_rows\": %zu, \"refit_iterations\": %d, \"sweep\": [",
                r->lr.best_c, pct(r->lr_top1, r->test_rows), pct(r->lr_top5, r->test_rows),
                r->lr.n_fit, r->lr.n_holdout, r->lr.refit_iters);
        for (int i = 0; i < r->lr.nc && r->lr.nc > 1; i++)
            fprintf(f, "%s{\"C\": %.15g, \"holdout_top1\": %.4f, \"iterations\": %d}", i ? ", " : "",
                    r->lr.cs[i], r->lr.holdout_top1[i], r->lr.iters[i]);
        fprintf(f, "]}");
    }
    if (c->retrieval) {
        const dv2_probe_retr *t = &r->retr;
        fprintf(f, ",\n \"retrieval\": {\"queries\": %" PRIu64 ", \"no_positive\": %" PRIu64
                   ", \"mAP\": %.4f",
                t->n, t->no_positive, t->n ? 100.0 * t->ap_sum / (double)t->n : 0.0);
        for (int k = 0; k < DV2_PROBE_RECALL_KS; k++)
            fprintf(f, ", \"recall@%d\": %.4f", t->recall_k[k], pct(t->recall_hits[k], t->n));
        fprintf(f, "}");
    }
    fprintf(f, "}\n");
}

static void print_table(FILE *f, const ctx *c, const results *r) {
    fprintf(f, "train  %s: %zu x %zu (model '%s', features '%s')\n", c->train, r->train.rows,
            r->train.dim, r->train.info.model, r->train.info.features);
    fprintf(f, "test   %s: %" PRIu64 " rows\n", c->test, r->test_rows);
    if (c->knn) {
        fprintf(f, "\nk-NN (cosine, %s weights, T=%g, %d neighbours, %d classes)\n",
                c->uniform ? "uniform" : "softmax", c->temperature, r->knn.kmax, r->knn.nclass);
        fprintf(f, "%8s %8s %8s\n", "k", "top-1", "top-5");
        for (int i = 0; i < r->knn.nk; i++)
            fprintf(f, "%8d %8.2f %8.2f\n", r->knn.ks[i], pct(r->knn.top1[i], r->knn.n),
                    pct(r->knn.top5[i], r->knn.n));
    }
    if (c->linear) {
        fprintf(f, "\nlinear (logistic regression, L-BFGS)\n");
        if (r->lr.nc > 1) {
            fprintf(f, "%12s %14s %6s   (fit on %zu rows, %zu held out)\n", "C", "held-out top-1",
                    "iters", r->lr.n_fit, r->lr.n_holdout);
            for (int i = 0; i < r->lr.nc; i++)
                fprintf(f, "%12.4g %14.2f %6d%s\n", r->lr.cs[i], r->lr.holdout_top1[i],
                        r->lr.iters[i], r->lr.cs[i] == r->lr.best_c ? "   <- chosen" : "");
        }
        fprintf(f, "%12s %8s %8s\n", "C", "top-1", "top-5");
        fprintf(f, "%12.4g %8.2f %8.2f\n", r->lr.best_c, pct(r->lr_top1, r->test_rows),
                pct(r->lr_top5, r->test_rows));
    }
    if (c->retrieval) {
        const dv2_probe_retr *t = &r->retr;
        fprintf(f, "\nretrieval (%" PRIu64 " queries, %" PRIu64 " without positives left out)\n",
                t->n, t->no_positive);
        fprintf(f, "%8s %8s %8s %8s\n", "mAP", "R@1", "R@5", "R@10");
        fprintf(f, "%8.2f %8.2f %8.2f %8.2f\n", t->n ? 100.0 * t->ap_sum / (double)t->n : 0.0,
                pct(t->recall_hits[0], t->n), pct(t->recall_hits[1], t->n),
                pct(t->recall_hits[2], t->n));
    }
}

static void on_fit(void *p, int i, double C, double top1) {
    dv2_debugf("linear: C=%g held-out top-1 %.2f%%", C, top1);
}

typedef struct meter {
    dv2_progress prog;
    int on, started;
} meter;

static void on_progress(void *p, uint64_t done, uint64_t total) {
    meter *m = p;
    if (!m->started) dv2_progress_start(&m->prog, m->on, "test rows", total, 0);
    m->started = 1;
    dv2_progress_update(&m->prog, done, 0);
}

int main(int argc, char **argv) {
    ctx c = {.temperature = 0.07, .holdout = 0.1, .max_iter = 1000, .block = 1024,
             .ks = {10, 20, 100, 200}, .nk = 4};
    static const dv2_cli_spec spec = {
        "dv2-probe", "--train TRAIN.emb --test TEST.emb [--knn K,...] [--linear] [--retrieval] [options]",
        "Evaluates frozen features: k-NN classification (cosine, top-200 softmax vote, T=0.07), a "
        "logistic-regression linear probe, instance retrieval.",
        "Without --knn, --linear or --retrieval, runs the k-NN classifier with k = 10,20,100,200.\n"
        "Labels come from the matrices; for --retrieval they are instance ids.\n"
        "--device cuda runs the k-NN search on the GPU (the training rows in device memory).",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_PROGRESS | DV2_CLI_SEED | DV2_CLI_DEVICE | DV2_CLI_THREADS, opts,
        dv2_knn_cuda_built};
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    if (cli.argi < argc) return dv2_usage_error("unexpected operand '%s'", argv[cli.argi]);
    if (!c.train || !c.test) return dv2_usage_error("--train and --test are required");
    if (strcmp(c.train, "-") == 0 && strcmp(c.test, "-") == 0)
        return dv2_usage_error("--train and --test cannot both read stdin");
    if (!strcmp(cli.device, "cpu-bf16"))
        return dv2_usage_error("--device cpu-bf16 is a model backend; the k-NN search runs on cpu or cuda");
    if (!c.knn && !c.linear && !c.retrieval) c.knn = 1;
    int cuda = strcmp(cli.device, "cuda") == 0;
    if (cuda && !c.knn) dv2_warnf("--device cuda: only the k-NN search runs on the GPU; this run has none");

    dv2_probe_eval_opts o;
    dv2_probe_eval_opts_default(&o);
    o.knn = c.knn, o.linear = c.linear, o.retrieval = c.retrieval;
    memcpy(o.ks, c.ks, sizeof c.ks);
    o.nk = c.nk;
    o.temperature = c.temperature;
    o.uniform = c.uniform;
    o.knn_backend = cuda ? DV2_KNN_CUDA : DV2_KNN_EXACT;
    o.cs = c.ncs ? c.cs : NULL;
    o.ncs = c.ncs;
    o.full_grid = c.full_grid;
    o.max_iter = c.max_iter;
    o.holdout = c.holdout;
    o.seed = cli.seed;
    o.block = (size_t)c.block;
    meter m = {.on = cli.progress};
    o.on_fit = on_fit;
    o.on_progress = on_progress;
    o.ctx = &m;

    dv2_error err = {0};
    results res;
    int exit_code = DV2_EXIT_OK;
    rc = dv2_probe_eval_run(&res, c.train, c.test, &o, &err);
    if (m.started) dv2_progress_end(&m.prog);
    if (res.train_loaded)
        dv2_debugf("train %s: %zu x %zu%s, loaded in %.2f s", c.train, res.train.rows, res.train.dim,
                   res.train.mapped ? " (mapped)" : "", res.load_s);
    if (rc) goto fail;
    if (c.linear) {
        if (res.lr_stopped)
            dv2_warnf("linear: %d of %d fits stopped at --max-iter %d before converging%s; a larger "
                      "--max-iter may change the result", res.lr_stopped, res.lr_fits, c.max_iter,
                      res.lr.refit_unconverged ? " (the final fit among them)" : "");
        dv2_debugf("linear: C=%g chosen, fitted in %.2f s", res.lr.best_c, res.linear_s);
    }
    dv2_debugf("test %s: %" PRIu64 " rows evaluated in %.2f s", c.test, res.test_rows, res.test_s);
    if (res.test_rows == 0) dv2_warnf("%s: the test matrix is empty", res.test_name);

    dv2_afile out;
    if ((rc = dv2_afile_open(&out, cli.output ? cli.output : "-", cli.force, &err)) != 0) goto fail;
    if (c.json) print_json(out.f, &c, &res);
    else print_table(out.f, &c, &res);
    if ((rc = dv2_afile_commit(&out, &err)) != 0) goto fail;
    goto done;
fail:
    exit_code = dv2_report(&err);
done:
    dv2_probe_eval_free(&res);
    return dv2_cli_finish(exit_code);
}
