/* cli_train.c — the command line of the two programs on the training engine
 * (see cli_train.h): dv2-train and dv2-distill parse the same options, build
 * the config the same way and run dv2_train_run; distillation adds the
 * teacher and refuses what it has no use for (stochastic depth, the
 * high-resolution phase). */
#include "cli/cli_train.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/afile.h"
#include "core/dist.h"
#include "ops/ops.h"
#include "train/config.h"
#include "train/train.h"

#define MAX_OVERRIDES 256

typedef struct ctx {
    int distill;
    const char *config, *out, *teacher;
    char data[4096];      /* the --data datasets, comma-separated (train.dataset_path) */
    int resume, print_config, list_keys, workers;
    int64_t ckpt_every, max_iters, highres_iters;
    int highres_size;
    const char *overrides[MAX_OVERRIDES];
    int noverrides;
} ctx;

/* The options of both programs; the teacher is dv2-distill's only, the
 * high-resolution phase and --list-keys dv2-train's only. */
enum { BOTH = 3, TRAIN = 1, DISTILL = 2 };
static const struct { dv2_opt o; int modes; } k_all_opts[] = {
    {{"config", 'c', 1, "FILE", "config file (official keys; see dv2-train(1))"}, TRAIN},
    {{"config", 'c', 1, "FILE", "config file of the student (dv2-train keys; see dv2-distill(1))"}, DISTILL},
    {{"teacher", 't', 1, "RUN|FILE", "frozen teacher: a dv2-train run directory, or safetensors with backbone and heads"},
     DISTILL},
    {{"data", 'd', 1, "DATASET", "training shards (dataset directory or shard); repeat it to train on several "
                               "datasets as one; overrides train.dataset_path"}, BOTH},
    {{"out", 0, 1, "DIR", "run directory (same as -o)"}, BOTH},
    {{"resume", 'r', 0, NULL, "continue from the newest complete checkpoint in the run directory"}, BOTH},
    {{"ckpt-every", 0, 1, "N", "iterations between checkpoints (train.checkpoint_period; 0: only at the end)"}, BOTH},
    {{"max-iters", 0, 1, "N", "stop after N iterations (train.max_iters; the schedules keep their length)"}, BOTH},
    {{"highres-iters", 0, 1, "N", "run the last N iterations with larger global crops (train.highres_iters)"}, TRAIN},
    {{"highres-size", 0, 1, "S", "global crop side of that phase (train.highres_size)"}, TRAIN},
    {{"workers", 0, 1, "N", "data loading threads (train.num_workers)"}, BOTH},
    {{"set", 's', 1, "KEY=VALUE", "override a config key (repeatable; KEY=VALUE operands work too)"}, BOTH},
    {{"print-config", 0, 0, NULL, "print the resolved config on stdout and exit"}, BOTH},
    {{"list-keys", 0, 0, NULL, "list the config keys with their types and exit"}, TRAIN},
};
#define N_ALL_OPTS (sizeof k_all_opts / sizeof k_all_opts[0])

/* The table of one program (NULL-name terminated), built on first use. */
static const dv2_opt *opts_for(int distill) {
    static dv2_opt tab[2][N_ALL_OPTS + 1];
    dv2_opt *t = tab[distill != 0];
    if (!t[0].name) {
        size_t n = 0;
        for (size_t i = 0; i < N_ALL_OPTS; i++)
            if (k_all_opts[i].modes & (distill ? DISTILL : TRAIN)) t[n++] = k_all_opts[i].o;
    }
    return t;
}

static int add_override(ctx *c, const char *kv) {
    if (c->noverrides == MAX_OVERRIDES) return dv2_usage_error("at most %d overrides", MAX_OVERRIDES);
    c->overrides[c->noverrides++] = kv;
    return 0;
}

/* Options by name, so the two tables need not share indices. */
static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    const char *n = opts_for(c->distill)[idx].name;
    if (!strcmp(n, "config")) c->config = arg;
    else if (!strcmp(n, "teacher")) c->teacher = arg;
    else if (!strcmp(n, "data")) {
        size_t have = strlen(c->data);
        if (strchr(arg, ','))
            return dv2_usage_error("--data '%s': a dataset path cannot hold a comma (several datasets: give "
                                   "--data once per dataset)", arg);
        if (have + strlen(arg) + 2 > sizeof c->data) return dv2_usage_error("--data: too many datasets");
        snprintf(c->data + have, sizeof c->data - have, "%s%s", have ? "," : "", arg);
    }
    else if (!strcmp(n, "out")) c->out = arg;
    else if (!strcmp(n, "resume")) c->resume = 1;
    else if (!strcmp(n, "ckpt-every")) {
        if (dv2_parse_i64(arg, 0, INT64_MAX, &c->ckpt_every))
            return dv2_usage_error("--ckpt-every: expected a count, got '%s'", arg);
    } else if (!strcmp(n, "max-iters")) {
        if (dv2_parse_i64(arg, 1, INT64_MAX, &c->max_iters))
            return dv2_usage_error("--max-iters: expected a positive count, got '%s'", arg);
    } else if (!strcmp(n, "highres-iters")) {
        if (dv2_parse_i64(arg, 0, INT64_MAX, &c->highres_iters))
            return dv2_usage_error("--highres-iters: expected a count, got '%s'", arg);
    } else if (!strcmp(n, "highres-size")) {
        if (dv2_parse_int(arg, 1, 8192, &c->highres_size))
            return dv2_usage_error("--highres-size: expected 1..8192, got '%s'", arg);
    } else if (!strcmp(n, "workers")) {
        if (dv2_parse_int(arg, 1, 256, &c->workers)) return dv2_usage_error("--workers: expected 1..256, got '%s'", arg);
    } else if (!strcmp(n, "set")) {
        return add_override(c, arg);
    } else if (!strcmp(n, "print-config")) {
        c->print_config = 1;
    } else if (!strcmp(n, "list-keys")) {
        c->list_keys = 1;
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

static dv2_cli_spec k_train_spec = {
    "dv2-train",
    "--config FILE --data DATASET -o RUN [options] [KEY=VALUE...]",
    "Trains a DINOv2 ViT (DINO + iBOT + KoLeo, EMA teacher) and writes a run directory.",
    "The teacher backbone is exported as RUN/teacher.safetensors (input of dv2-embed).\n"
    "SIGTERM or SIGUSR1 writes a checkpoint and exits 0; --resume continues exactly.\n"
    "Data-parallel: mpirun -np N dv2-train ... (or srun).",
    DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_SEED | DV2_CLI_THREADS | DV2_CLI_DEVICE,
    NULL, /* options: opts_for(0) */
    dv2_backend_cuda_built,
};

static dv2_cli_spec k_distill_spec = {
    "dv2-distill",
    "--config FILE --teacher RUN|FILE --data DATASET -o RUN [options] [KEY=VALUE...]",
    "Distils a frozen DINOv2 teacher into a student ViT and writes a run directory.",
    "The student's EMA is exported as RUN/student_ema.safetensors (input of dv2-embed),\n"
    "the raw student as RUN/student.safetensors.  SIGTERM or SIGUSR1 writes a checkpoint\n"
    "and exits 0; --resume (with the same --teacher) continues exactly.\n"
    "Data-parallel: mpirun -np N dv2-distill ... (or srun).",
    DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_SEED | DV2_CLI_THREADS | DV2_CLI_DEVICE,
    NULL, /* options: opts_for(1) */
    dv2_backend_cuda_built,
};

int dv2_cli_train_main(int argc, char **argv, int distill) {
    ctx c = {0};
    c.distill = distill;
    c.ckpt_every = -1;
    dv2_cli_spec *spec = distill ? &k_distill_spec : &k_train_spec;
    spec->opts = opts_for(distill);
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    for (int i = cli.argi; i < argc; i++) {
        if (!strchr(argv[i], '=')) return dv2_usage_error("unexpected operand '%s' (expected KEY=VALUE)", argv[i]);
        if ((rc = add_override(&c, argv[i]))) return rc;
    }
    if (c.list_keys) {
        dv2_config_keyinfo ki;
        for (size_t i = 0; dv2_config_key(i, &ki) == 0; i++) printf("%-40s %-5s %s\n", ki.key, ki.type, ki.help);
        return dv2_cli_finish(0);
    }
    if (cli.output && c.out && strcmp(cli.output, c.out)) return dv2_usage_error("-o and --out disagree");
    const char *out = c.out ? c.out : cli.output;
    if (out && strcmp(out, "-") == 0) /* the common -o takes '-' for stdout; a run is a directory */
        return dv2_usage_error("-o -: a run is a directory, it cannot go to standard output");

    dv2_error err = {0};
    dv2_config cfg;
    dv2_config_defaults(&cfg);
    if (distill) cfg.student.drop_path_rate = 0; /* no stochastic depth (spec §16) */
    /* a resumed run takes its own resolved config unless one is given */
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
        (c.highres_iters > 0 && set_num(&cfg, "train.highres_iters", c.highres_iters, &err)) ||
        (c.highres_size > 0 && set_num(&cfg, "train.highres_size", c.highres_size, &err)) ||
        (c.workers > 0 && set_num(&cfg, "train.num_workers", c.workers, &err)) ||
        (c.data[0] && dv2_config_set(&cfg, "train.dataset_path", c.data, "command line", &err)))
        return dv2_usage_error("%s", err.msg);
    if (dv2_config_validate(&cfg, &err)) return dv2_usage_error("%s", err.msg);
    if (distill && cfg.student.drop_path_rate > 0)
        return dv2_usage_error("student.drop_path_rate = %g: distillation has no stochastic depth (set it to 0)",
                               cfg.student.drop_path_rate);
    if (distill && cfg.train.highres_iters > 0)
        return dv2_usage_error("train.highres_iters: no high-resolution phase in distillation");
    if (c.print_config) {
        dv2_config_write(&cfg, stdout);
        return dv2_cli_finish(0);
    }
    if (distill && !c.teacher) return dv2_usage_error("no teacher (--teacher RUN|FILE)");
    if (!out) return dv2_usage_error("no run directory (-o RUN)");
    if (!cfg.train.dataset_path[0]) return dv2_usage_error("no training data (--data DATASET)");
    dv2_backend *be = NULL;
    {
        char bdesc[512];
        if (dv2_backend_open(&be, cli.device, bdesc, sizeof bdesc, &err)) return dv2_report(&err);
        dv2_debugf("%s", bdesc);
    }

    dv2_dist dist;
    if (dv2_dist_init(&dist, 0, &err)) return dv2_report(&err);
    if (!c.resume && !cli.force && dir_has_run(out)) { /* every rank sees it: all stop */
        if (dist.rank == 0) dv2_errorf("%s: already holds a run (use --resume to continue it, -f to start over)", out);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_ERROR; /* a conflict with what is on disk, not a usage error */
    }
    /* every rank has looked at the directory before rank 0 writes into it */
    if (dv2_dist_barrier(&dist, &err)) {
        dv2_report(&err);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_ERROR;
    }
    if (dv2_verbosity() > 0 && dist.rank == 0) {
        fprintf(stderr, "%s: resolved config:\n", spec->prog);
        dv2_config_write(&cfg, stderr);
    }
    dv2_cleanup_install();  /* SIGINT, SIGHUP: remove temporary files and die */
    dv2_graceful_install(); /* SIGTERM, SIGUSR1: checkpoint and exit 0 */
    dv2_train_opts o = {cfg.train.dataset_path, out, c.resume, 0, on_log, NULL, distill ? c.teacher : NULL, be};
    dv2_train_result res;
    rc = dv2_train_run(&cfg, &o, &dist, &res, &err);
    dv2_backend_info binfo;
    be->info(be, &binfo);
    dv2_backend_close(be);
    if (rc) {
        if (dist.rank == 0 || dist.world == 1) dv2_report(&err);
        dv2_dist_finalize(&dist);
        return DV2_EXIT_ERROR;
    }
    if (dist.rank == 0)
        dv2_infof("%s: iterations %lld..%lld of %lld in %.1f s (%.1f images/s), loss %.4f, digest %016" PRIx64 "%s",
                  out, (long long)res.start_iter, (long long)res.end_iter, (long long)res.total_iters, res.seconds,
                  res.images_per_s, res.last_loss, res.digest, res.interrupted ? " (interrupted, checkpoint written)" : "");
    if (dist.rank == 0 && res.optim_shards > 0)
        dv2_debugf("optimizer state: %zu bytes per rank (sharded over %d)", res.optim_bytes, res.optim_shards);
    else if (dist.rank == 0)
        dv2_debugf("optimizer state: %zu bytes per rank (not sharded)", res.optim_bytes);
    if (dist.rank == 0 && res.steps_run > 0)
        dv2_debugf("student pass: %.1f MiB of activations and their gradients%s", res.student_bytes / 1048576.0,
                   res.student_bf16_kept ? " (blocks' GEMM and attention outputs kept in bf16)" : "");
    if (dist.rank == 0 && dist.world > 1 && res.steps_run > 0 && res.reduce_floats > 0) {
        if (res.reduce_overlap)
            dv2_debugf("gradient reduction: %.1f ms per step after the backward; %.1f%% of its %.0f floats "
                       "started during the backward", 1e3 * res.reduce_s / res.steps_run,
                       100.0 * (double)res.reduce_early / (double)res.reduce_floats,
                       (double)res.reduce_floats / res.steps_run);
        else
            dv2_debugf("gradient reduction: %.1f ms per step after the backward (not overlapped)",
                       1e3 * res.reduce_s / res.steps_run);
    }
    if (dist.rank == 0 && res.steps_run > 0)
        dv2_debugf("transfers per step: device to host %.0f B, host to device %.0f B (input images %.0f B)",
                   (double)res.step_to_host / res.steps_run, (double)res.step_to_device / res.steps_run,
                   (double)res.step_input / res.steps_run);
    if (dist.rank == 0 && binfo.mem_peak)
        dv2_debugf("device memory: %.2f GiB in use at the peak, workspace high-water %.1f MiB",
                   binfo.mem_peak / 1073741824.0, binfo.workspace_high / 1048576.0);
    dv2_dist_finalize(&dist);
    return dv2_cli_finish(0);
}
