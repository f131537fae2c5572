/* dv2-distill — distillation of a frozen DINOv2 teacher (backbone + DINO and
 * iBOT heads) into a smaller student (spec §16): the DINO, iBOT (every patch
 * token of both global crops, no masking) and KoLeo losses against the
 * teacher's targets, no stochastic depth, a spare EMA of the student as the
 * final model.  The engine is dv2-train's (lib/train/train.h) in its
 * distillation mode; this file parses options, builds the config and
 * reports. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/afile.h"
#include "core/dist.h"
#include "train/config.h"
#include "train/train.h"
#include "ops/ops.h"

#define MAX_OVERRIDES 256

typedef struct ctx {
    const char *config, *data, *out, *teacher;
    int resume, print_config, workers;
    int64_t ckpt_every, max_iters;
    const char *overrides[MAX_OVERRIDES];
    int noverrides;
} ctx;

static const dv2_opt opts[] = {
    {"config", 'c', 1, "FILE", "config file of the student (dv2-train keys; see dv2-distill(1))"},
    {"teacher", 't', 1, "RUN|FILE", "frozen teacher: a dv2-train run directory, or safetensors with backbone and heads"},
    {"data", 'd', 1, "DATASET", "training shards (dataset directory or shard); overrides train.dataset_path"},
    {"out", 0, 1, "DIR", "run directory (same as -o)"},
    {"resume", 'r', 0, NULL, "continue from the newest complete checkpoint in the run directory"},
    {"ckpt-every", 0, 1, "N", "iterations between checkpoints (train.checkpoint_period; 0: only at the end)"},
    {"max-iters", 0, 1, "N", "stop after N iterations (train.max_iters; the schedules keep their length)"},
    {"workers", 0, 1, "N", "data loading threads (train.num_workers)"},
    {"set", 's', 1, "KEY=VALUE", "override a config key (repeatable; KEY=VALUE operands work too)"},
    {"print-config", 0, 0, NULL, "print the resolved config on stdout and exit"},
    {NULL, 0, 0, NULL, NULL},
};

static int add_override(ctx *c, const char *kv) {
    if (c->noverrides == MAX_OVERRIDES) return dv2_usage_error("at most %d overrides", MAX_OVERRIDES);
    c->overrides[c->noverrides++] = kv;
    return 0;
}

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    switch (idx) {
    case 0: c->config = arg; break;
    case 1: c->teacher = arg; break;
    case 2: c->data = arg; break;
    case 3: c->out = arg; break;
    case 4: c->resume = 1; break;
    case 5: if (dv2_parse_i64(arg, 0, INT64_MAX, &c->ckpt_every)) return dv2_usage_error("--ckpt-every: expected a count, got '%s'", arg); break;
    case 6: if (dv2_parse_i64(arg, 1, INT64_MAX, &c->max_iters)) return dv2_usage_error("--max-iters: expected a positive count, got '%s'", arg); break;
    case 7: if (dv2_parse_int(arg, 1, 256, &c->workers)) return dv2_usage_error("--workers: expected 1..256, got '%s'", arg); break;
    case 8: return add_override(c, arg);
    case 9: c->print_config = 1; break;
    }
    return 0;
}

static void on_log(void *ctx_, const char *line) {
    (void)ctx_;
    dv2_infof("%s", line);
}

static int set_num(dv2_config *cfg, const char *key, long long v, dv2_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return dv2_config_set(cfg, key, buf, "command line", err);
}

static int dir_has_run(const char *dir) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/config.cfg", dir);
    return stat(path, &st) == 0;
}

int main(int argc, char **argv) {
    ctx c = {0};
    c.ckpt_every = -1;
    dv2_cli cli;
    static const dv2_cli_spec spec = {
        "dv2-distill",
        "--config FILE --teacher RUN|FILE --data DATASET -o RUN [options] [KEY=VALUE...]",
        "Distils a frozen DINOv2 teacher into a student ViT and writes a run directory.",
        "The student's EMA is exported as RUN/student_ema.safetensors (input of dv2-embed),\n"
        "the raw student as RUN/student.safetensors.  SIGTERM or SIGUSR1 writes a checkpoint\n"
        "and exits 0; --resume (with the same --teacher) continues exactly.\n"
        "Data-parallel: mpirun -np N dv2-distill ... (or srun).",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_SEED | DV2_CLI_THREADS | DV2_CLI_DEVICE,
        opts,
        NULL,
    };
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    for (int i = cli.argi; i < argc; i++) {
        if (!strchr(argv[i], '=')) return dv2_usage_error("unexpected operand '%s' (expected KEY=VALUE)", argv[i]);
        if ((rc = add_override(&c, argv[i]))) return rc;
    }
    if (cli.output && c.out && strcmp(cli.output, c.out)) return dv2_usage_error("-o and --out disagree");
    const char *out = c.out ? c.out : cli.output;

    dv2_error err = {0};
    dv2_config cfg;
    dv2_config_defaults(&cfg);
    cfg.student.drop_path_rate = 0; /* distillation: no stochastic depth (spec §16) */
    char runcfg[4096] = "";
    if (c.resume && !c.config && out) {
        snprintf(runcfg, sizeof runcfg, "%s/config.cfg", out);
        if (dir_has_run(out)) c.config = runcfg;
    }
    if (c.config && dv2_config_load(&cfg, c.config, &err)) {
        dv2_errorf("%s", err.msg);
        return DV2_EXIT_USAGE;
    }
    for (int i = 0; i < c.noverrides; i++)
        if (dv2_config_override(&cfg, c.overrides[i], &err)) return dv2_usage_error("%s", err.msg);
    if ((cli.seed_set && set_num(&cfg, "train.seed", (long long)cli.seed, &err)) ||
        (c.ckpt_every >= 0 && set_num(&cfg, "train.checkpoint_period", c.ckpt_every, &err)) ||
        (c.max_iters > 0 && set_num(&cfg, "train.max_iters", c.max_iters, &err)) ||
        (c.workers > 0 && set_num(&cfg, "train.num_workers", c.workers, &err)) ||
        (c.data && dv2_config_set(&cfg, "train.dataset_path", c.data, "command line", &err)))
        return dv2_usage_error("%s", err.msg);
    if (dv2_config_validate(&cfg, &err)) return dv2_usage_error("%s", err.msg);
    if (cfg.student.drop_path_rate > 0)
        return dv2_usage_error("student.drop_path_rate = %g: distillation has no stochastic depth (set it to 0)",
                               cfg.student.drop_path_rate);
    if (cfg.train.highres_iters > 0) return dv2_usage_error("train.highres_iters: no high-resolution phase in distillation");
    if (c.print_config) {
        dv2_config_write(&cfg, stdout);
        return dv2_cli_finish(0);
    }
    if (!c.teacher) return dv2_usage_error("no teacher (--teacher RUN|FILE)");
    if (!out) return dv2_usage_error("no run directory (-o RUN)");
    if (!cfg.train.dataset_path[0]) return dv2_usage_error("no training data (--data DATASET)");
    const dv2_backend *be = NULL;
    {
        char bdesc[160];
        if (dv2_backend_open(&be, cli.device, bdesc, sizeof bdesc, &err)) return dv2_report(&err);
        dv2_debugf("%s", bdesc);
    }

    dv2_dist dist;
    if (dv2_dist_init(&dist, 0, &err)) return dv2_report(&err);
    if (!c.resume && !cli.force && dir_has_run(out)) { /* every rank sees it: all stop */
        if (dist.rank == 0) dv2_errorf("%s: already holds a run (use --resume to continue it, -f to start over)", out);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_USAGE;
    }
    if (dv2_dist_barrier(&dist, &err)) {
        dv2_report(&err);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_ERROR;
    }
    if (dv2_verbosity() > 0 && dist.rank == 0) {
        fprintf(stderr, "dv2-distill: resolved config:\n");
        dv2_config_write(&cfg, stderr);
    }
    dv2_cleanup_install();  /* SIGINT, SIGHUP: remove temporary files and die */
    dv2_graceful_install(); /* SIGTERM, SIGUSR1: checkpoint and exit 0 */
    dv2_train_opts o = {cfg.train.dataset_path, out, c.resume, 0, on_log, NULL, c.teacher, be};
    dv2_train_result res;
    rc = dv2_train_run(&cfg, &o, &dist, &res, &err);
    if (rc) {
        if (dist.rank == 0 || dist.world == 1) dv2_report(&err);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_ERROR;
    }
    if (dist.rank == 0)
        dv2_infof("%s: iterations %lld..%lld of %lld in %.1f s (%.1f images/s), loss %.4f, digest %016" PRIx64 "%s",
                  out, (long long)res.start_iter, (long long)res.end_iter, (long long)res.total_iters, res.seconds,
                  res.images_per_s, res.last_loss, res.digest, res.interrupted ? " (interrupted, checkpoint written)" : "");
    dv2_dist_finalize(&dist);
    return dv2_cli_finish(0);
}
