/* cli.h — the command-line layer shared by all dv2 programs: option parsing
 * with the common options (-h -V -q -v -o -f --progress --seed --device -j),
 * one-line messages on stderr, strict number parsing, progress meters and the
 * final stdout check.  Only this module and cmd/ print; nothing here exits.
 *
 * Usage in a program:
 *     static const dv2_opt opts[] = {{"shard-size", 0, 1, "SIZE", "..."}, {0}};
 *     dv2_cli cli;
 *     int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &ctx);
 *     if (rc != DV2_CLI_RUN) return rc;          // help printed (0) or usage error (2)
 *     ... argv[cli.argi .. argc-1] are the operands ...
 */
#ifndef DV2_CLI_H
#define DV2_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "core/dv2.h"

/* Exit codes, the same for every program and documented in every man page. */
enum { DV2_EXIT_OK = 0, DV2_EXIT_ERROR = 1, DV2_EXIT_USAGE = 2 };
#define DV2_CLI_RUN (-1) /* dv2_cli_parse: go on and run */

/* Which common options a program takes besides -h -V -q -v (always on).
 * --seed and --device are accepted by every program (the contract is the
 * same everywhere); DV2_CLI_SEED / DV2_CLI_DEVICE say they mean something
 * there, and --help of the others says that they have no effect.  Progress
 * is never drawn on the terminal that receives the data (stdout and stderr
 * the same terminal with -o - or no -o). */
enum {
    DV2_CLI_OUTPUT = 1 << 0,   /* -o FILE|DIR|- */
    DV2_CLI_FORCE = 1 << 1,    /* -f */
    DV2_CLI_PROGRESS = 1 << 2, /* --progress */
    DV2_CLI_SEED = 1 << 3,     /* --seed N */
    DV2_CLI_DEVICE = 1 << 4,   /* --device cpu|cuda|auto */
    DV2_CLI_THREADS = 1 << 5,  /* -j/--threads N */
    DV2_CLI_ALL = 0x3f,
};

typedef struct dv2_opt {
    const char *name;  /* long name without "--"; NULL ends the table */
    int short_name;    /* a letter, or 0 */
    int has_arg;       /* 0: flag, 1: takes an argument */
    const char *arg;   /* argument name shown in --help ("FILE") */
    const char *help;  /* one line */
} dv2_opt;

typedef struct dv2_cli_spec {
    const char *prog;        /* "dv2-pack" */
    const char *synopsis;    /* "-o OUT [options] INPUT..." (after the program name) */
    const char *summary;     /* one sentence of what the program does */
    const char *epilog;      /* extra text at the end of --help, or NULL */
    unsigned common;         /* DV2_CLI_* mask */
    const dv2_opt *opts;     /* the program's own options, NULL-name terminated */
    /* 1 when this program can run on CUDA in this build (shown by -V); NULL:
     * it runs on the CPU only, and --device cuda is a usage error. */
    int (*cuda_ok)(void);
} dv2_cli_spec;

typedef struct dv2_cli {
    const char *prog;
    int verbose;        /* -1 with -q, 0 by default, +1 per -v */
    int force;          /* -f */
    int progress;       /* 1 when progress is shown: --progress, or stderr is a tty (not with -q) */
    const char *output; /* -o, NULL if absent */
    uint64_t seed;      /* --seed, 0 by default */
    int seed_set;
    const char *device; /* --device, "auto" by default */
    int threads;        /* -j, 0 = all online cpus */
    int argi;           /* index of the first operand in argv after parsing */
} dv2_cli;

/* Called for each of the program's own options: idx indexes spec->opts, arg is
 * its argument or NULL.  Return 0 to go on, or DV2_EXIT_USAGE after calling
 * dv2_usage_error() to stop. */
typedef int (*dv2_opt_fn)(void *ctx, int idx, const char *arg);

/* Parses argv (options and operands may be mixed; "--" ends options; "-" is an
 * operand).  Returns DV2_CLI_RUN to go on, 0 when --help/--version was printed,
 * DV2_EXIT_USAGE on a usage error (message already printed).  Applies -j to
 * OpenMP and OpenBLAS. */
int dv2_cli_parse(dv2_cli *cli, const dv2_cli_spec *spec, int argc, char **argv,
                  dv2_opt_fn fn, void *ctx);
void dv2_cli_help(const dv2_cli_spec *spec, FILE *f);

/* Messages, all on stderr, prefixed with the program name:
 *   dv2_errorf  "prog: error: ..."   always
 *   dv2_warnf   "prog: warning: ..." unless -q
 *   dv2_infof   "prog: ..."          unless -q (summaries)
 *   dv2_debugf  "prog: ..."          only with -v
 * dv2_usage_error prints the error and a "Try 'prog --help'" hint and returns
 * DV2_EXIT_USAGE.  dv2_report prints err->msg as an error and returns
 * DV2_EXIT_ERROR. */
void dv2_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dv2_warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dv2_infof(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dv2_debugf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dv2_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dv2_report(const dv2_error *err);
int dv2_verbosity(void); /* the global level set by dv2_cli_parse */
const char *dv2_prog(void);

/* Strict number parsing: whole string, range-checked.  Return 0 or DV2_EINVAL.
 * dv2_parse_size accepts K, M, G, T suffixes (powers of 1024, optional "iB"/"B"). */
int dv2_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int dv2_parse_int(const char *s, int min, int max, int *out);
int dv2_parse_u64(const char *s, uint64_t *out);
int dv2_parse_size(const char *s, uint64_t *out);
int dv2_parse_double(const char *s, double min, double max, double *out);
/* "10,20,100" -> out[0..*n-1]; each in [min,max]; at most cap values. */
int dv2_parse_int_list(const char *s, int min, int max, int *out, int cap, int *n);

/* Refuses binary output to a terminal unless forced; returns 0 or DV2_EXIT_USAGE. */
int dv2_cli_check_binary_stdout(const dv2_cli *cli);
/* Flushes and closes stdout and reports a failed write (full disk, closed
 * pipe).  Returns the exit status to use: rc unchanged, or DV2_EXIT_ERROR. */
int dv2_cli_finish(int rc);

/* Progress meter on stderr, ~6 updates a second, one summary line at the end.
 * total_items / total_bytes may be 0 when unknown (no ETA then). */
typedef struct dv2_progress {
    int enabled;
    const char *what;       /* "records", "images", ... */
    uint64_t total_items, total_bytes;
    uint64_t items, bytes;
    double t_start, t_last;
    int drawn;
} dv2_progress;
void dv2_progress_start(dv2_progress *p, int enabled, const char *what,
                        uint64_t total_items, uint64_t total_bytes);
void dv2_progress_update(dv2_progress *p, uint64_t items, uint64_t bytes); /* absolute counts */
void dv2_progress_end(dv2_progress *p); /* clears the line; the caller prints its summary */

/* ---- BLAS kernels (cli_blas.c) ------------------------------------------ */
/* Called first by dv2_cli_parse: when OpenBLAS runs fallback kernels on this
 * CPU and the user did not set OPENBLAS_CORETYPE, re-executes the program
 * (/proc/self/exe, the same argv) with OPENBLAS_CORETYPE set to the right
 * core.  Returns only when nothing is to be done or the re-exec failed. */
void dv2_cli_blas_fix(char **argv);
/* One line of which kernels run and why ("Haswell kernels (chosen by ...)"),
 * printed by -v and -V. */
void dv2_cli_blas_describe(char *out, size_t n);

#endif
