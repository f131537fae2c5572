/* cli.c — option parsing, messages, number parsing, progress (see cli.h). */
#include "cli/cli.h"
#include "ops/cpu/cpu_blas.h"
#include "ops/cpu/cpu_vec.h"
#include "ops/ops.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The only mutable globals: program name and verbosity, set once by parsing. */
static const char *g_prog = "dv2";
static int g_verbose = 0;

int dv2_verbosity(void) { return g_verbose; }
const char *dv2_prog(void) { return g_prog; }

static void vmsg(const char *kind, const char *fmt, va_list ap) {
    fflush(stdout);
    fprintf(stderr, "%s: %s", g_prog, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void dv2_errorf(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vmsg("error: ", fmt, ap); va_end(ap);
}
void dv2_warnf(const char *fmt, ...) {
    if (g_verbose < 0) return;
    va_list ap; va_start(ap, fmt); vmsg("warning: ", fmt, ap); va_end(ap);
}
void dv2_infof(const char *fmt, ...) {
    if (g_verbose < 0) return;
    va_list ap; va_start(ap, fmt); vmsg("", fmt, ap); va_end(ap);
}
void dv2_debugf(const char *fmt, ...) {
    if (g_verbose < 1) return;
    va_list ap; va_start(ap, fmt); vmsg("", fmt, ap); va_end(ap);
}
int dv2_usage_error(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vmsg("error: ", fmt, ap); va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", g_prog);
    return DV2_EXIT_USAGE;
}
int dv2_report(const dv2_error *err) {
    if (err && err->msg[0]) dv2_errorf("%s", err->msg);
    else dv2_errorf("%s", dv2_status_str(err ? err->code : DV2_EIO));
    return DV2_EXIT_ERROR;
}

/* ---- option parsing --------------------------------------------------------- */

enum { OPT_HELP = 1000, OPT_VERSION, OPT_QUIET, OPT_VERBOSE, OPT_OUTPUT, OPT_FORCE,
       OPT_PROGRESS, OPT_SEED, OPT_DEVICE, OPT_THREADS, OPT_USER = 2000 };

typedef struct { const char *name; int has_arg; int shortc; int id; unsigned need; const char *arg, *help; } common_opt;
static const common_opt k_common[] = {
    {"output", 1, 'o', OPT_OUTPUT, DV2_CLI_OUTPUT, "OUT", "write to OUT ('-' for stdout)"},
    {"force", 0, 'f', OPT_FORCE, DV2_CLI_FORCE, NULL, "overwrite existing outputs; allow binary output to a terminal"},
    {"progress", 0, 0, OPT_PROGRESS, DV2_CLI_PROGRESS, NULL, "show progress on stderr even when it is not a terminal"},
    {"seed", 1, 0, OPT_SEED, 0, "N", "random seed (default 0)"},
    {"device", 1, 0, OPT_DEVICE, 0, "DEV", "cpu, cpu-bf16, cuda or auto (default auto; -V lists what this program runs on)"},
    {"threads", 1, 'j', OPT_THREADS, DV2_CLI_THREADS, "N", "worker threads (default: all cores)"},
    {"quiet", 0, 'q', OPT_QUIET, 0, NULL, "only errors on stderr"},
    {"verbose", 0, 'v', OPT_VERBOSE, 0, NULL, "more messages (repeat for more)"},
    {"help", 0, 'h', OPT_HELP, 0, NULL, "show this help and exit"},
    {"version", 0, 'V', OPT_VERSION, 0, NULL, "show version and build features and exit"},
};
#define N_COMMON (sizeof k_common / sizeof k_common[0])

static void help_line(FILE *f, int shortc, const char *name, const char *arg, const char *help) {
    char left[96];
    if (shortc) snprintf(left, sizeof left, "-%c, --%s%s%s", shortc, name, arg ? " " : "", arg ? arg : "");
    else snprintf(left, sizeof left, "    --%s%s%s", name, arg ? " " : "", arg ? arg : "");
    if (strlen(left) > 26) fprintf(f, "  %s\n  %-26s  %s\n", left, "", help);
    else fprintf(f, "  %-26s  %s\n", left, help);
}

void dv2_cli_help(const dv2_cli_spec *spec, FILE *f) {
    fprintf(f, "Usage: %s %s\n%s\n", spec->prog, spec->synopsis, spec->summary);
    if (spec->opts && spec->opts[0].name) {
        fprintf(f, "\nOptions:\n");
        for (const dv2_opt *o = spec->opts; o->name; o++) help_line(f, o->short_name, o->name, o->arg, o->help);
    }
    fprintf(f, "\nCommon options:\n");
    for (size_t i = 0; i < N_COMMON; i++) {
        const common_opt *c = &k_common[i];
        if (c->need && !(spec->common & c->need)) continue;
        const char *help = c->help;
        if (c->id == OPT_SEED && !(spec->common & DV2_CLI_SEED)) help = "accepted everywhere; no effect here (no randomness)";
        if (c->id == OPT_DEVICE && !(spec->common & DV2_CLI_DEVICE))
            help = "accepted everywhere; cpu or auto here (the work is on the CPU)";
        help_line(f, c->shortc, c->name, c->arg, help);
    }
    if (spec->epilog) fprintf(f, "\n%s\n", spec->epilog);
    fprintf(f, "\nExit status: 0 success, 1 runtime or data error, 2 usage error.\n"
               "See %s(1).\n", spec->prog);
}

static int same_terminal(int a, int b) {
    struct stat sa, sb;
    return isatty(a) && isatty(b) && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_rdev == sb.st_rdev;
}

int dv2_cli_parse(dv2_cli *cli, const dv2_cli_spec *spec, int argc, char **argv,
                  dv2_opt_fn fn, void *ctx) {
    dv2_cli_blas_fix(argv);
    memset(cli, 0, sizeof *cli);
    cli->prog = g_prog = spec->prog;
    cli->device = "auto";
    g_verbose = 0;
    int progress_forced = 0;

    size_t nuser = 0;
    if (spec->opts) while (spec->opts[nuser].name) nuser++;
    struct option *lo = calloc(N_COMMON + nuser + 1, sizeof *lo);
    char shorts[128] = ":";   /* leading ':' reports a missing argument as ':'; GNU permutes operands */
    size_t ns = 1, nl = 0;
    if (!lo) { dv2_errorf("out of memory"); return DV2_EXIT_ERROR; }
    for (size_t i = 0; i < N_COMMON; i++) {
        const common_opt *c = &k_common[i];
        if (c->need && !(spec->common & c->need)) continue;
        lo[nl++] = (struct option){c->name, c->has_arg ? required_argument : no_argument, NULL, c->id};
        if (c->shortc && ns + 3 < sizeof shorts) {
            shorts[ns++] = (char)c->shortc;
            if (c->has_arg) shorts[ns++] = ':';
        }
    }
    for (size_t i = 0; i < nuser; i++) {
        const dv2_opt *o = &spec->opts[i];
        lo[nl++] = (struct option){o->name, o->has_arg ? required_argument : no_argument, NULL, OPT_USER + (int)i};
        if (o->short_name && ns + 3 < sizeof shorts) {
            shorts[ns++] = (char)o->short_name;
            if (o->has_arg) shorts[ns++] = ':';
        }
    }
    shorts[ns] = 0;

    int rc = DV2_CLI_RUN;
    opterr = 0;
    optind = 1;
    int c, li;
    while (rc == DV2_CLI_RUN && (c = getopt_long(argc, argv, shorts, lo, &li)) != -1) {
        /* Map short letters of program options to their index. */
        if (c > 0 && c < 256 && c != '?' && c != ':') {
            int mapped = 0;
            for (size_t i = 0; i < N_COMMON; i++)
                if (k_common[i].shortc == c && (!k_common[i].need || (spec->common & k_common[i].need))) { c = k_common[i].id; mapped = 1; break; }
            if (!mapped)
                for (size_t i = 0; i < nuser; i++)
                    if (spec->opts[i].short_name == c) { c = OPT_USER + (int)i; break; }
        }
        switch (c) {
        case OPT_HELP: dv2_cli_help(spec, stdout); rc = dv2_cli_finish(0); break;
        case OPT_VERSION:
            {
                char blas[256];
                dv2_cli_blas_describe(blas, sizeof blas);
                printf("%s %s (%s)\n", spec->prog, DV2_VERSION, dv2_build_features());
                printf("devices: cpu%s\n", spec->cuda_ok && spec->cuda_ok() ? " cuda" : "");
                printf("blas: %s; %s\n", dv2_cpu_blas_config(), blas);
                printf("vector kernels: %s\n", dv2_cpu_vec()->name);
            }
            rc = dv2_cli_finish(0);
            break;
        case OPT_QUIET: g_verbose = -1; break;
        case OPT_VERBOSE: g_verbose = g_verbose < 0 ? 1 : g_verbose + 1; break;
        case OPT_OUTPUT: cli->output = optarg; break;
        case OPT_FORCE: cli->force = 1; break;
        case OPT_PROGRESS: progress_forced = 1; break;
        case OPT_SEED:
            if (dv2_parse_u64(optarg, &cli->seed)) rc = dv2_usage_error("--seed: not a non-negative integer: '%s'", optarg);
            cli->seed_set = 1;
            break;
        case OPT_DEVICE:
            if (!dv2_backend_known(optarg))
                rc = dv2_usage_error("--device: expected cpu, cpu-bf16, cuda, cuda-bf16 or auto, got '%s'", optarg);
            cli->device = optarg;
            break;
        case OPT_THREADS:
            if (dv2_parse_int(optarg, 1, 4096, &cli->threads)) rc = dv2_usage_error("-j/--threads: expected 1..4096, got '%s'", optarg);
            break;
        case ':':
            if (optopt > 0 && optopt < 256) rc = dv2_usage_error("option -%c needs an argument", optopt);
            else rc = dv2_usage_error("option '%s' needs an argument", argv[optind - 1]);
            break;
        case '?':
            if (optopt > 0 && optopt < 256) rc = dv2_usage_error("unknown option -%c", optopt);
            else rc = dv2_usage_error("unknown option '%s'", argv[optind - 1]);
            break;
        default:
            if (c >= OPT_USER && c < OPT_USER + (int)nuser) {
                int r = fn ? fn(ctx, c - OPT_USER, optarg) : 0;
                if (r) rc = r;
            } else {
                rc = dv2_usage_error("unhandled option");
            }
        }
    }
    free(lo);
    cli->verbose = g_verbose;
    cli->argi = optind;
    cli->progress = g_verbose >= 0 && (progress_forced || isatty(2));
    if (cli->progress && (!cli->output || !strcmp(cli->output, "-")) && same_terminal(1, 2))
        cli->progress = 0; /* data goes to the terminal the meter would draw on */
    if (rc == DV2_CLI_RUN && !strncmp(cli->device, "cuda", 4) && !(spec->cuda_ok && spec->cuda_ok()))
        rc = dv2_usage_error("--device %s: %s runs on the CPU only in this build (see -V)", cli->device, spec->prog);
    if (rc == DV2_CLI_RUN && g_verbose > 0) {
        char blas[256];
        dv2_cli_blas_describe(blas, sizeof blas);
        dv2_debugf("blas: %s", blas);
        dv2_debugf("vector kernels: %s", dv2_cpu_vec()->name);
    }
    if (rc == DV2_CLI_RUN && cli->threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(cli->threads);
#endif
        char buf[16];
        snprintf(buf, sizeof buf, "%d", cli->threads);
        setenv("OPENBLAS_NUM_THREADS", buf, 0);
    }
    return rc;
}

/* ---- numbers ------------------------------------------------------------------ */

int dv2_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s) return DV2_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) return DV2_EINVAL;
    *out = v;
    return 0;
}

int dv2_parse_int(const char *s, int min, int max, int *out) {
    int64_t v;
    if (dv2_parse_i64(s, min, max, &v)) return DV2_EINVAL;
    *out = (int)v;
    return 0;
}

int dv2_parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return DV2_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) return DV2_EINVAL;
    *out = v;
    return 0;
}

int dv2_parse_size(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return DV2_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return DV2_EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ULL << 10; end++; break;
    case 'm': case 'M': mul = 1ULL << 20; end++; break;
    case 'g': case 'G': mul = 1ULL << 30; end++; break;
    case 't': case 'T': mul = 1ULL << 40; end++; break;
    default: break;
    }
    if (mul > 1 && *end == 'i') end++;
    if (*end == 'B') end++;
    if (*end) return DV2_EINVAL;
    if (v > UINT64_MAX / mul) return DV2_EINVAL;
    *out = v * mul;
    return 0;
}

int dv2_parse_double(const char *s, double min, double max, double *out) {
    if (!s || !*s) return DV2_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < min || v > max) return DV2_EINVAL;
    *out = v;
    return 0;
}

int dv2_parse_int_list(const char *s, int min, int max, int *out, int cap, int *n) {
    *n = 0;
    if (!s || !*s) return DV2_EINVAL;
    const char *p = s;
    char buf[64];
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof buf || *n >= cap) return DV2_EINVAL;
        memcpy(buf, p, len);
        buf[len] = 0;
        if (dv2_parse_int(buf, min, max, &out[*n])) return DV2_EINVAL;
        (*n)++;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------- */

int dv2_cli_check_binary_stdout(const dv2_cli *cli) {
    if (!cli->force && isatty(1))
        return dv2_usage_error("refusing to write binary data to a terminal (use -o FILE, a pipe, or -f)");
    return 0;
}

int dv2_cli_finish(int rc) {
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        fprintf(stderr, "%s: error: writing standard output: %s\n", g_prog, strerror(e));
        return rc ? rc : DV2_EXIT_ERROR;
    }
    return rc;
}

/* ---- progress ----------------------------------------------------------------- */

void dv2_progress_start(dv2_progress *p, int enabled, const char *what,
                        uint64_t total_items, uint64_t total_bytes) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->what = what;
    p->total_items = total_items;
    p->total_bytes = total_bytes;
    p->t_start = p->t_last = dv2_now();
}

static void fmt_eta(char *buf, size_t n, double secs) {
    if (!(secs >= 0) || secs > 1e7) { snprintf(buf, n, "?"); return; }
    long s = (long)secs;
    if (s >= 3600) snprintf(buf, n, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
}

void dv2_progress_update(dv2_progress *p, uint64_t items, uint64_t bytes) {
    p->items = items;
    p->bytes = bytes;
    if (!p->enabled) return;
    double now = dv2_now();
    if (now - p->t_last < 1.0 / 6 && !(p->total_items && items == p->total_items)) return;
    p->t_last = now;
    double el = now - p->t_start;
    if (el <= 0) el = 1e-9;
    double rate = (double)items / el, mbs = (double)bytes / el / 1e6;
    char eta[32] = "";
    char line[200];
    if (p->total_items && items > 0) {
        fmt_eta(eta, sizeof eta, (double)(p->total_items - (items < p->total_items ? items : p->total_items)) / rate);
        snprintf(line, sizeof line, "%s: %llu/%llu %s (%.1f%%), %.0f/s, %.1f MB/s, ETA %s", g_prog,
                 (unsigned long long)items, (unsigned long long)p->total_items, p->what,
                 100.0 * (double)items / (double)p->total_items, rate, mbs, eta);
    } else {
        snprintf(line, sizeof line, "%s: %llu %s, %.0f/s, %.1f MB/s", g_prog,
                 (unsigned long long)items, p->what, rate, mbs);
    }
    fprintf(stderr, "\r%-79s", line);
    fflush(stderr);
    p->drawn = 1;
}

void dv2_progress_end(dv2_progress *p) {
    if (p->drawn) {
        fprintf(stderr, "\r%79s\r", "");
        fflush(stderr);
    }
    p->drawn = 0;
}
