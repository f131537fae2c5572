/* dv2-pack — packs images (files, directories, path lists, WebDataset tars,
 * IDX files, shards) into a dataset of shards or a shard stream; lists,
 * verifies and extracts shards.  Parsing and reporting only: the engine is
 * lib/pack/pack.c, the format lib/format/shard.c (man/dv2-pack.1, man/dv2-shard.5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "pack/pack.h"

enum { M_PACK, M_LS, M_VERIFY, M_EXTRACT };

typedef struct ctx {
    dv2_pack_opts o;
    int mode, nmodes, wds;
    const char *extract_dir;
    dv2_progress prog;
} ctx;

static const dv2_opt opts[] = {
    {"labels", 0, 1, "TSV", "labels from key<TAB>label lines"},
    {"label-from-dir", 0, 0, NULL, "label = class directory (ImageFolder); class list into the manifest"},
    {"idx-labels", 0, 1, "FILE", "IDX label file for the next IDX input (repeatable, in order)"},
    {"select", 0, 1, "IDS", "keep only the records whose id is listed ('-' = stdin)"},
    {"shard-size", 0, 1, "SIZE", "bytes per shard, K/M/G suffixes (default 1G)"},
    {"level", 0, 1, "N", "zstd level 1..19 (default 3)"},
    {"strict", 0, 0, NULL, "an unreadable or damaged image is an error, not a warning"},
    {"ls", 0, 0, NULL, "list records as TSV: id, key, label, bytes"},
    {"verify", 0, 0, NULL, "check every record checksum, index and manifest"},
    {"extract", 0, 1, "DIR", "write every record's bytes to DIR/KEY"},
    {"allow-empty", 0, 0, NULL, "an output without records is not an error"},
    {"webdataset", 0, 0, NULL, "--extract in the WebDataset layout: KEY.jpg (or .png) and KEY.cls"},
    {NULL, 0, 0, NULL, NULL},
};

static int on_opt(void *vc, int idx, const char *arg) {
    ctx *c = vc;
    int lvl;
    switch (idx) {
    case 0: c->o.labels_tsv = arg; break;
    case 1: c->o.label_from_dir = 1; break;
    case 2:
        if (c->o.nidx_labels == DV2_PACK_MAX_IDX_LABELS)
            return dv2_usage_error("--idx-labels: at most %d files", DV2_PACK_MAX_IDX_LABELS);
        c->o.idx_labels[c->o.nidx_labels++] = arg;
        break;
    case 3: c->o.select = arg; break;
    case 4:
        if (dv2_parse_size(arg, &c->o.shard_size) || c->o.shard_size < 4096)
            return dv2_usage_error("--shard-size: expected a size of at least 4K (e.g. 512M), got '%s'", arg);
        break;
    case 5:
        if (dv2_parse_int(arg, 1, 19, &lvl)) return dv2_usage_error("--level: expected 1..19, got '%s'", arg);
        c->o.level = lvl;
        break;
    case 6: c->o.strict = 1; break;
    case 7: c->mode = M_LS; c->nmodes++; break;
    case 8: c->mode = M_VERIFY; c->nmodes++; break;
    case 9: c->mode = M_EXTRACT; c->nmodes++; c->extract_dir = arg; break;
    case 10: c->o.allow_empty = 1; break;
    case 11: c->wds = 1; break;
    }
    return 0;
}

static void on_warn(void *vc, const char *msg) {
    ctx *c = vc;
    dv2_progress_end(&c->prog);
    dv2_warnf("%s", msg);
}

static void on_info(void *vc, const char *msg) {
    ctx *c = vc;
    dv2_progress_end(&c->prog);
    dv2_infof("%s", msg);
}

static void on_progress(void *vc, uint64_t records, uint64_t bytes, uint64_t total) {
    ctx *c = vc;
    c->prog.total_items = total;
    dv2_progress_update(&c->prog, records, bytes);
}

int main(int argc, char **argv) {
    static const dv2_cli_spec spec = {
        "dv2-pack", "-o OUT [options] INPUT...\n       dv2-pack --ls|--verify|--extract DIR SHARDS...",
        "Pack images into dv2 shards; list, verify or extract shards.",
        "INPUT: image files, directories (recursive, sorted), '-' (paths on stdin, or a shard or tar\n"
        "stream), WebDataset tars, IDX files (MNIST format, gzip or raw), shards, datasets.\n"
        "OUT: a dataset directory (resumed if a run was interrupted) or '-' (a shard stream).",
        DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_PROGRESS | DV2_CLI_THREADS, opts, NULL};
    ctx c;
    memset(&c, 0, sizeof c);
    dv2_pack_opts_init(&c.o);
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &c);
    if (rc != DV2_CLI_RUN) return rc;
    char **inputs = argv + cli.argi;
    int n = argc - cli.argi, stdin_uses = 0;
    for (int i = 0; i < n; i++) stdin_uses += strcmp(inputs[i], "-") == 0;
    if (c.o.select && strcmp(c.o.select, "-") == 0) stdin_uses++;
    if (c.nmodes > 1) return dv2_usage_error("--ls, --verify and --extract exclude each other");
    if (c.wds && c.mode != M_EXTRACT) return dv2_usage_error("--webdataset goes with --extract");
    if (n == 0) return dv2_usage_error("no input given");
    if (stdin_uses > 1) return dv2_usage_error("standard input is used twice");
    dv2_error err = {0};
    dv2_pack_stats st;
    double t0 = dv2_now();
    dv2_cleanup_install();
    if (c.mode != M_PACK) {
        if (cli.output) return dv2_usage_error("-o does not go with --ls/--verify/--extract");
        if (c.o.select || c.o.labels_tsv || c.o.label_from_dir || c.o.nidx_labels)
            return dv2_usage_error("packing options do not go with --ls/--verify/--extract");
        if (c.mode == M_LS) rc = dv2_pack_ls(inputs, n, stdout, &st, &err);
        else if (c.mode == M_VERIFY) rc = dv2_pack_verify(inputs, n, &st, &err);
        else rc = dv2_pack_extract(inputs, n, c.extract_dir, cli.force, c.wds, &st, &err);
        if (rc < 0) return dv2_cli_finish(dv2_report(&err));
        if (c.mode == M_VERIFY)
            dv2_infof("ok: %llu records, %.1f MB of payload, all checksums and indexes verified",
                      (unsigned long long)st.records, (double)st.bytes_in / 1e6);
        else if (c.mode == M_EXTRACT)
            dv2_infof("extracted %llu records (%.1f MB) into %s", (unsigned long long)st.records,
                      (double)st.bytes_in / 1e6, c.extract_dir);
        return dv2_cli_finish(0);
    }
    if (!cli.output) return dv2_usage_error("no output given (-o DIR, or -o - for a stream)");
    c.o.out = cli.output;
    c.o.force = cli.force;
    c.o.threads = cli.threads;
    if (strcmp(c.o.out, "-") == 0 && (rc = dv2_cli_check_binary_stdout(&cli)) != 0) return rc;
    c.o.warn = on_warn;
    c.o.info = on_info;
    c.o.progress = on_progress;
    c.o.ctx = &c;
    dv2_progress_start(&c.prog, cli.progress, "records", 0, 0);
    rc = dv2_pack_run(&c.o, inputs, n, &st, &err);
    dv2_progress_end(&c.prog);
    if (rc < 0) return dv2_cli_finish(dv2_report(&err));
    double dt = dv2_now() - t0;
    if (st.resumed_records) /* the whole dataset, and what this run added to it */
        dv2_infof("%llu records in %llu shards (%llu records in %llu shards kept from the interrupted run, "
                  "%llu packed now: %.1f MB), %.1f MB written in all, %llu skipped, %llu not selected, %.1f s",
                  (unsigned long long)st.records, (unsigned long long)st.shards,
                  (unsigned long long)st.resumed_records, (unsigned long long)st.resumed_shards,
                  (unsigned long long)(st.records - st.resumed_records), (double)st.bytes_in / 1e6,
                  (double)st.bytes_out / 1e6, (unsigned long long)st.skipped, (unsigned long long)st.filtered, dt);
    else
        dv2_infof("%llu records (%.1f MB) in %llu shards, %.1f MB written, %llu skipped, %llu not selected, "
                  "%.1f s", (unsigned long long)st.records, (double)st.bytes_in / 1e6,
                  (unsigned long long)st.shards, (double)st.bytes_out / 1e6, (unsigned long long)st.skipped,
                  (unsigned long long)st.filtered, dt);
    return dv2_cli_finish(0);
}
