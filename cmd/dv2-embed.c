/* dv2-embed — frozen features of images in shards: decode, the official
 * evaluation transform, a ViT forward (or the pixel baseline), rows of an
 * embedding matrix.  Parses options, builds the extractor, opens the output
 * (in place with --resume), and runs lib/embed/embed.h.  --merge concatenates
 * the matrices of a sharded embedding job (lib/format/matrix.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "embed/copydesc.h"
#include "embed/embed.h"
#include "embed/embed_sscd.h"
#include "embed/embed_vit.h"
#include "format/matrix.h"
#include "model/arch.h"
#include "model/weights.h"
#include "format/safetensors.h"
#include "ops/ops.h"

typedef struct opts {
    const char *model, *arch, *features, *pca, *npy;
    int keep_aspect;
    int merge;
    int zstd, pixels, copy, layers, normalize, size, resize, batch, resume, strict, f16, size_set, resize_set;
} opts;

enum { O_MODEL, O_ARCH, O_PIXELS, O_FEATURES, O_LAYERS, O_NORMALIZE, O_SIZE, O_RESIZE, O_PCA,
       O_BATCH, O_RESUME, O_STRICT, O_F16, O_ZSTD, O_NPY, O_COPY, O_KEEP_ASPECT, O_MERGE };
static const dv2_opt k_opts[] = {
    [O_MODEL] = {"model", 'm', 1, "FILE", "weights (safetensors): a DINOv2 ViT or an SSCD ResNet, architecture from its metadata"},
    [O_ARCH] = {"arch", 0, 1, "NAME", "random-init baseline: vit_small, vit_base, vit_large, vit_giant2 (with --seed)"},
    [O_PIXELS] = {"pixels", 0, 0, NULL, "baseline without a model: the normalized crop as the vector"},
    [O_FEATURES] = {"features", 0, 1, "KIND", "cls (default), avgpool, clsavg (cls + mean patch) or patch"},
    [O_LAYERS] = {"layers", 0, 1, "N", "linear-probe layout: cls of the last N blocks + avgpool of the last"},
    [O_NORMALIZE] = {"normalize", 0, 0, NULL, "L2-normalize every row"},
    [O_SIZE] = {"size", 0, 1, "N", "center crop side, the model input (default 224, or the model's img_size when its metadata records a smaller one; SSCD: the square side, default 288)"},
    [O_RESIZE] = {"resize", 0, 1, "N", "shorter side before the crop (default 256 with --size 224, else size*8/7)"},
    [O_PCA] = {"pca", 0, 1, "DIR", "write DIR/ID.jpg: each crop beside the first 3 PCA components of its patches"},
    [O_BATCH] = {"batch", 'b', 1, "N", "images per forward (default 32)"},
    [O_RESUME] = {"resume", 0, 0, NULL, "write OUT in place; skip ids already in OUT and append"},
    [O_STRICT] = {"strict", 0, 0, NULL, "a corrupt image is an error (default: warn and skip)"},
    [O_F16] = {"f16", 0, 0, NULL, "store vectors as float16"},
    [O_ZSTD] = {"zstd", 0, 0, NULL, "compress the matrix with zstd (every reader accepts both forms)"},
    [O_NPY] = {"npy", 0, 1, "FILE", "also write FILE (float32 rows, .npy) and its ids and labels beside it (X.ids.npy, X.labels.npy for X.npy)"},
    [O_COPY] = {"copy", 0, 0, NULL, "copy descriptor without a model (255 dims, flip-invariant; --size 64 by default)"},
    [O_KEEP_ASPECT] = {"keep-aspect", 0, 0, NULL, "SSCD model: resize the shorter side to --size, keeping the aspect ratio (images of one size share a forward)"},
    [O_MERGE] = {"merge", 0, 0, NULL, "INPUTs are embedding matrices: concatenate them into OUT (same rows description, no id twice)"},
    {0},
};

static int on_opt(void *ctx, int idx, const char *arg) {
    opts *o = ctx;
    switch (idx) {
    case O_MODEL: o->model = arg; break;
    case O_ARCH: o->arch = arg; break;
    case O_PIXELS: o->pixels = 1; break;
    case O_COPY: o->copy = 1; break;
    case O_KEEP_ASPECT: o->keep_aspect = 1; break;
    case O_MERGE: o->merge = 1; break;
    case O_FEATURES:
        if (strcmp(arg, "cls") && strcmp(arg, "avgpool") && strcmp(arg, "clsavg") && strcmp(arg, "patch"))
            return dv2_usage_error("--features: expected cls, avgpool, clsavg or patch, got '%s'", arg);
        o->features = arg;
        break;
    case O_LAYERS:
        if (dv2_parse_int(arg, 1, 64, &o->layers)) return dv2_usage_error("--layers: expected 1..64, got '%s'", arg);
        break;
    case O_NORMALIZE: o->normalize = 1; break;
    case O_SIZE:
        if (dv2_parse_int(arg, 1, 4096, &o->size)) return dv2_usage_error("--size: expected 1..4096, got '%s'", arg);
        o->size_set = 1;
        break;
    case O_RESIZE:
        if (dv2_parse_int(arg, 0, 8192, &o->resize)) return dv2_usage_error("--resize: expected 0..8192, got '%s'", arg);
        o->resize_set = 1;
        break;
    case O_PCA: o->pca = arg; break;
    case O_BATCH:
        if (dv2_parse_int(arg, 1, 4096, &o->batch)) return dv2_usage_error("--batch: expected 1..4096, got '%s'", arg);
        break;
    case O_RESUME: o->resume = 1; break;
    case O_STRICT: o->strict = 1; break;
    case O_F16: o->f16 = 1; break;
    case O_ZSTD: o->zstd = 1; break;
    case O_NPY: o->npy = arg; break;
    }
    return 0;
}

typedef struct run_ctx {
    dv2_matrix_writer *w;
    int flush_each;
    const char *pca_dir;
    const dv2_embed_model *m;
    dv2_progress prog;
} run_ctx;

static int sink(void *ctx, const dv2_embed_batch *b, dv2_error *err) {
    run_ctx *rc = ctx;
    int r = dv2_matrix_writer_write(rc->w, b->ids, b->labels, b->vecs, b->n, err);
    if (!r && rc->flush_each) r = dv2_matrix_writer_flush(rc->w, err);
    if (!r && rc->pca_dir) r = dv2_embed_vit_pca_write(rc->pca_dir, rc->m, b, err);
    return r;
}

static void warn(void *ctx, const char *msg) {
    (void)ctx;
    dv2_warnf("skipping %s", msg);
}

static void progress(void *ctx, uint64_t done, uint64_t bytes) {
    run_ctx *rc = ctx;
    dv2_progress_update(&rc->prog, done, bytes);
}

/* Warns about an input given twice, or a shard given beside its dataset:
 * its records would be embedded twice. */
static void warn_repeated_inputs(char **in, int n) {
    char **real = calloc((size_t)n, sizeof *real);
    if (!real) return;
    for (int i = 0; i < n; i++) real[i] = strcmp(in[i], "-") ? realpath(in[i], NULL) : NULL;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j || !real[i] || !real[j]) continue;
            size_t li = strlen(real[i]);
            if (j > i && !strcmp(real[i], real[j]))
                dv2_warnf("%s is given twice: its records will be embedded twice", in[j]);
            else if (!strncmp(real[i], real[j], li) && real[j][li] == '/')
                dv2_warnf("%s is inside %s, also given: its records will be embedded twice", in[j], in[i]);
        }
    for (int i = 0; i < n; i++) free(real[i]);
    free(real);
}

/* --merge: the INPUTs are matrices, concatenated into the output. */
static int merge_main(const dv2_cli *cli, const opts *o, char **in, int nin) {
    if (o->model || o->arch || o->pixels || o->copy || o->features || o->layers || o->normalize || o->size_set ||
        o->resize_set || o->pca || o->resume || o->strict || o->f16 || o->keep_aspect)
        return dv2_usage_error("--merge takes matrices and only -o, -f, --zstd and --npy");
    const char *out = cli->output ? cli->output : "-";
    int rc, nstdin = 0;
    for (int i = 0; i < nin; i++) nstdin += !strcmp(in[i], "-");
    if (nstdin > 1) return dv2_usage_error("'-' (stdin) can be given once");
    if (!strcmp(out, "-") && (rc = dv2_cli_check_binary_stdout(cli))) return rc;
    dv2_cleanup_install();
    dv2_error err;
    dv2_error_clear(&err);
    dv2_matrix_write_opts wo = {.force = cli->force, .zstd = o->zstd, .npy_path = o->npy};
    uint64_t rows = 0;
    if ((rc = dv2_matrix_merge(out, (const char *const *)in, nin, &wo, &rows, &err)))
        return dv2_cli_finish(dv2_report(&err));
    dv2_infof("merged %d matrices: %llu rows", nin, (unsigned long long)rows);
    return dv2_cli_finish(0);
}

int main(int argc, char **argv) {
    dv2_cli_spec spec = {
        .prog = "dv2-embed",
        .synopsis = "(-m MODEL | --arch NAME | --pixels | --copy) [options] [-o OUT] INPUT...\n"
                    "       dv2-embed --merge [-o OUT] MATRIX...",
        .summary = "Embed the images of datasets, shards or a shard stream ('-') into an embedding matrix.",
        .epilog = "Preprocessing is the official evaluation transform: bicubic resize of the shorter\n"
                  "side (antialiased as PIL), center crop, ImageNet mean/std.  An SSCD model gets\n"
                  "SSCD's square transform: bilinear resize to SIZE x SIZE (antialiased as PIL).",
        .common = DV2_CLI_OUTPUT | DV2_CLI_FORCE | DV2_CLI_PROGRESS | DV2_CLI_SEED | DV2_CLI_DEVICE | DV2_CLI_THREADS,
        .opts = k_opts,
        .cuda_ok = dv2_backend_cuda_built,
    };
    opts o = {.size = 224, .resize = 256, .batch = 32};
    dv2_cli cli;
    int rc = dv2_cli_parse(&cli, &spec, argc, argv, on_opt, &o);
    if (rc != DV2_CLI_RUN) return rc;
    int nin = argc - cli.argi;
    if (nin < 1) return dv2_usage_error("no input (datasets, shards, or '-' for a shard stream on stdin)");
    if (o.merge) return merge_main(&cli, &o, argv + cli.argi, nin);
    if ((o.model != NULL) + (o.arch != NULL) + o.pixels + o.copy != 1)
        return dv2_usage_error("give exactly one of -m MODEL, --arch NAME, --pixels, --copy");
    if ((o.pixels || o.copy) && (o.features || o.layers || o.pca))
        return dv2_usage_error("%s takes no --features, --layers or --pca", o.pixels ? "--pixels" : "--copy");
    if (o.copy && !o.size_set) o.size = 64, o.size_set = 1, o.resize = o.resize_set ? o.resize : 64, o.resize_set = 1;
    if (o.layers && o.features) return dv2_usage_error("--layers and --features exclude each other");
    int sscd = o.model && dv2_embed_sscd_is_model(o.model);
    if (sscd && (o.features || o.layers || o.pca))
        return dv2_usage_error("%s is an SSCD model: it takes no --features, --layers or --pca", o.model);
    if (sscd && o.resize_set)
        return dv2_usage_error("%s is an SSCD model: its input is resized to --size x --size, it takes no --resize", o.model);
    if (!strncmp(cli.device, "cuda", 4) && (o.pixels || o.copy || sscd))
        return dv2_usage_error("--device %s: %s runs on the CPU only (the GPU runs the ViTs)", cli.device,
                               o.pixels ? "--pixels" : o.copy ? "--copy" : "an SSCD model");
    if (o.keep_aspect && !sscd) return dv2_usage_error("--keep-aspect needs an SSCD model (-m)");
    if (sscd && o.size_set && o.size < 32) return dv2_usage_error("--size %d: an SSCD model needs at least 32", o.size);
    if (o.arch) { /* a bad --arch, or a --size it cannot take, is a usage error found before any work */
        dv2_arch a;
        dv2_error e = {0};
        if (dv2_arch_preset(&a, o.arch, &e)) return dv2_usage_error("--arch: %s", e.msg);
        if (o.size % a.patch_size)
            return dv2_usage_error("--size %d is not a multiple of the patch size %d of %s", o.size, a.patch_size, o.arch);
    }
    if (o.model && o.size_set && !sscd) { /* likewise a --size the model cannot take (an unreadable model is
                                   * reported, exit 1, when it is loaded below) */
        dv2_safetensors_file *f = NULL;
        dv2_arch a;
        dv2_error e = {0};
        int bad = 0;
        if (dv2_safetensors_open(&f, o.model, &e) == 0 && dv2_weights_arch(f, &a, &e) == 0)
            bad = o.size % a.patch_size ? a.patch_size : 0;
        dv2_safetensors_close(f);
        if (bad) return dv2_usage_error("--size %d is not a multiple of the patch size %d of %s", o.size, bad, o.model);
    }
    const char *out = cli.output ? cli.output : "-";
    if (o.resume && !strcmp(out, "-")) return dv2_usage_error("--resume needs -o FILE");
    if (o.resume && o.zstd) return dv2_usage_error("--resume cannot append to a --zstd matrix (write it uncompressed)");
    if (!strcmp(out, "-") && (rc = dv2_cli_check_binary_stdout(&cli))) return rc;
    dv2_backend *be = NULL;
    if (!(o.pixels || o.copy || sscd)) { /* only the ViTs run on the backend: no GPU context for the others */
        char bdesc[512];
        dv2_error berr;
        dv2_error_clear(&berr);
        if (dv2_backend_open(&be, cli.device, bdesc, sizeof bdesc, &berr)) return dv2_report(&berr);
        dv2_debugf("%s", bdesc);
    }
    int nstdin = 0;
    for (int i = cli.argi; i < argc; i++) nstdin += !strcmp(argv[i], "-");
    if (nstdin > 1) return dv2_usage_error("'-' (stdin) can be given once");
    dv2_cleanup_install();

    dv2_error err;
    dv2_error_clear(&err);
    uint64_t total = 0;
    warn_repeated_inputs(argv + cli.argi, nin);
    if ((rc = dv2_embed_check_inputs((const char *const *)argv + cli.argi, nin, &total, &err)))
        return dv2_report(&err);
    dv2_embed_model *m = NULL;
    if (o.pixels) {
        rc = dv2_embed_model_pixels(&m, o.size, &err);
    } else if (o.copy) {
        rc = dv2_embed_model_copy(&m, o.size, &err);
    } else if (sscd) {
        rc = dv2_embed_model_sscd(&m, o.model, o.size_set ? o.size : 0, o.keep_aspect, &err);
    } else {
        dv2_embed_vit_opts vo;
        dv2_embed_vit_opts_default(&vo);
        vo.weights = o.model;
        vo.arch = o.arch;
        vo.seed = cli.seed;
        vo.size = o.size_set ? o.size : 0; /* 0: the model's default */
        vo.features = o.features ? o.features : "cls";
        vo.layers = o.layers;
        vo.want_patch = o.pca != NULL;
        vo.backend = be;
        rc = dv2_embed_model_vit(&m, &vo, &err);
    }
    if (rc) return dv2_report(&err);
    if (!o.size_set && m->size != o.size && !sscd)
        dv2_infof("input size %d: the img_size in the metadata of %s (give --size to change it)", m->size, o.model ? o.model : "the model");
    o.size = m->size;
    if (!o.resize_set) o.resize = o.size == 224 ? 256 : (int)((o.size * 8 + 6) / 7);
    if (sscd) o.resize = 0; /* the square transform resizes straight to the input side */
    if (o.resize && o.resize < o.size) dv2_warnf("--resize %d is smaller than --size %d: the crop is zero-padded", o.resize, o.size);
    if (o.normalize && strlen(m->features) + 11 < sizeof m->features) strcat(m->features, " normalized");
    dv2_debugf("model %s, features %s, dim %zu", m->name, m->features, m->dim);
    if (o.pca && (rc = dv2_mkdir_p(o.pca, &err))) {
        dv2_embed_model_free(m);
        return dv2_report(&err);
    }

    dv2_embed_cfg cfg;
    dv2_embed_cfg_default(&cfg);
    cfg.resize = o.resize;
    cfg.crop = o.size;
    cfg.batch = o.batch;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.threads = cli.threads > 0 ? cli.threads : (ncpu > 0 ? (int)ncpu : 1);
    cfg.strict = o.strict;
    cfg.normalize = o.normalize;
    cfg.want_patch = o.pca != NULL;

    dv2_matrix_info info;
    dv2_matrix_info_init(&info, o.f16 ? DV2_MATRIX_F16 : DV2_MATRIX_F32, (uint32_t)m->dim);
    snprintf(info.model, sizeof info.model, "%s", m->name);
    snprintf(info.features, sizeof info.features, "%s", m->features);
    if (sscd) snprintf(info.note, sizeof info.note, "dv2-embed %s %d bilinear", o.keep_aspect ? "shorter-side" : "square", o.size);
    else snprintf(info.note, sizeof info.note, "dv2-embed resize %d crop %d", o.resize, o.size);
    if ((rc = dv2_embed_params(&info, m, &cfg, &err))) {
        dv2_embed_model_free(m);
        return dv2_report(&err);
    }
    dv2_matrix_write_opts wo = {.force = cli.force, .append = o.resume, .zstd = o.zstd, .npy_path = o.npy};
    run_ctx ctx = {.flush_each = o.resume, .pca_dir = o.pca, .m = m};
    rc = dv2_matrix_writer_open(&ctx.w, out, &info, &wo, &err);
    if (rc) {
        dv2_embed_model_free(m);
        if (o.resume && rc == DV2_EINVAL) dv2_error_prefix(&err, "--resume");
        return dv2_report(&err);
    }
    uint64_t *done_ids = NULL;
    size_t ndone = 0;
    if (o.resume) {
        long cut = dv2_matrix_writer_restarted(ctx.w);
        if (cut > 0)
            dv2_warnf("%s: only %ld bytes of a header (an interrupted first run): starting over", out, cut);
        if ((rc = dv2_embed_done_ids(out, dv2_matrix_writer_rows(ctx.w), &done_ids, &ndone, &err))) {
            dv2_matrix_writer_abort(ctx.w);
            dv2_embed_model_free(m);
            return dv2_report(&err);
        }
        dv2_debugf("resume: %zu rows already in %s", ndone, out);
    }
    dv2_embed_io io = {.sink = sink, .warn = warn, .progress = progress, .ctx = &ctx,
                       .skip_ids = done_ids, .nskip = ndone};
    dv2_embed_stats st;
    double t0 = dv2_now();
    /* The total from the manifests and shard indexes (unknown for a stream);
     * with --resume the rows already done are not counted again. */
    uint64_t todo = total == DV2_DATASET_UNKNOWN ? 0 : total > ndone ? total - ndone : 0;
    dv2_progress_start(&ctx.prog, cli.progress, "images", todo, 0);
    rc = dv2_embed_run(m, &cfg, (const char *const *)argv + cli.argi, nin, &io, &st, &err);
    dv2_progress_end(&ctx.prog);
    if (rc) {
        dv2_matrix_writer_abort(ctx.w);
    } else {
        rc = dv2_matrix_writer_close(ctx.w, &err);
    }
    free(done_ids);
    dv2_embed_model_free(m);
    dv2_backend_close(be);
    if (rc) return dv2_cli_finish(dv2_report(&err));
    double dt = dv2_now() - t0;
    dv2_infof("embedded %llu images (%llu skipped as corrupt, %llu already done) in %.1f s, %.1f images/s",
              (unsigned long long)st.embedded, (unsigned long long)st.bad, (unsigned long long)st.skipped, dt,
              dt > 0 ? st.embedded / dt : 0.0);
    return dv2_cli_finish(0);
}
