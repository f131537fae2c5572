/* test_embed.c — the embedding engine (lib/embed/embed.h, lib/embed/embed_vit.h).
 *
 * Without arguments: builds a small dataset of generated JPEG/PNM images (one
 * of them corrupt) in the current directory and checks that
 *   - pixel rows equal the evaluation transform applied image by image, in
 *     input order, for 1 and 3 decode threads and several batch sizes;
 *   - the corrupt image is skipped and counted, or stops the run with strict;
 *   - skip ids (resume) drop exactly those records;
 *   - ViT rows (random-init vit_small at 28 px) equal the model core's forward
 *     called directly (cls, avgpool, clsavg, patch, layers), bit for bit;
 *   - a weight file with a wrong shape or a missing tensor is an error naming it.
 * With `--make-dataset DIR N [--corrupt I]`: writes such a dataset, and with
 * `--write-model FILE [--bad TENSOR] [--nan TENSOR] [--img-size N]` a random
 * vit_small weight file (one tensor's shape broken, one NaN in a tensor, a
 * position table for N px), for the shell tests (tests/t_embed.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "format/dataset.h"
#include "format/matrix.h"
#include "embed/embed.h"
#include "embed/embed_vit.h"
#include "core/hash.h"
#include "image/image.h"
#include "ops/ops.h"
#include "image/resize.h"
#include "core/rng.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "format/shard.h"
#include "testutil.h"
#include "tu_backend.h"
#include "model/vit.h"

/* Image i: a deterministic picture of size (20 + 7i%23) x (18 + 5i%19), JPEG
 * for even i, PPM for odd i. */
static int make_image(uint8_t **out, size_t *n, int i) {
    dv2_image img;
    dv2_image_init(&img);
    int w = 20 + (7 * i) % 23, h = 18 + (5 * i) % 19;
    if (dv2_image_resize_buffer(&img, w, h, NULL)) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img.rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)((x * (c + 2) * 9 + y * (i + 3) * 5 + i * 31) & 255);
    int rc = i % 2 ? dv2_image_encode_ppm_alloc(out, n, &img, NULL) : dv2_image_encode_jpeg_alloc(out, n, &img, 90, NULL);
    dv2_image_free(&img);
    return rc;
}

/* Writes a dataset of n records in 2 shards; record `corrupt` (or -1) gets
 * damaged image bytes. */
static int make_dataset(const char *dir, int n, int corrupt) {
    dv2_error err;
    if (dv2_mkdir_p(dir, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    dv2_manifest man;
    dv2_manifest_init(&man);
    int per = (n + 1) / 2, rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        char name[64], path[4096];
        dv2_dataset_shard_name(name, sizeof name, (uint64_t)s);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        dv2_shard_writer *w = NULL;
        if (!f || dv2_shard_writer_create(&w, f, path, 3, &err)) { rc = 1; break; }
        int k = 0;
        for (int i = s * per; i < n && i < (s + 1) * per && !rc; i++, k++) {
            uint8_t *data;
            size_t len;
            if (make_image(&data, &len, i)) { rc = 1; break; }
            if (i == corrupt) memset(data + len / 3, 0x5a, len / 3);
            char key[64];
            snprintf(key, sizeof key, "img/%05d.%s", i, i % 2 ? "ppm" : "jpg");
            dv2_record rec = {.id = dv2_key_id(key), .key = key, .label = i % 3, .data = data, .size = len};
            if (i == corrupt && i % 2) rec.size = len / 2; /* PPM: truncate */
            rc = dv2_shard_writer_add(w, &rec, &err) ? 1 : 0;
            free(data);
        }
        if (!rc && dv2_shard_writer_finish(w, &err)) rc = 1;
        uint64_t bytes = w ? dv2_shard_writer_bytes(w) : 0;
        dv2_shard_writer_free(w);
        if (f && fclose(f)) rc = 1;
        if (!rc && dv2_manifest_add_shard(&man, name, (uint64_t)k, bytes, &err)) rc = 1;
    }
    if (!rc && dv2_manifest_write(&man, dir, &err)) rc = 1;
    if (rc) fprintf(stderr, "make_dataset: %s\n", err.msg);
    dv2_manifest_free(&man);
    return rc;
}

/* ---- collecting sink ---- */

typedef struct collect {
    size_t n, dim;
    uint64_t ids[256];
    int32_t labels[256];
    float *vecs; /* 256 x dim */
    int nwarn;
} collect;

static int collect_sink(void *ctx, const dv2_embed_batch *b, dv2_error *err) {
    collect *c = ctx;
    for (size_t i = 0; i < b->n && c->n < 256; i++, c->n++) {
        c->ids[c->n] = b->ids[i];
        c->labels[c->n] = b->labels[i];
        memcpy(c->vecs + c->n * c->dim, b->vecs + i * c->dim, c->dim * sizeof(float));
    }
    return 0;
}

static void collect_warn(void *ctx, const char *msg) {
    collect *c = ctx;
    c->nwarn++;
    if (!strstr(msg, "img/00005")) fprintf(stderr, "unexpected warning: %s\n", msg);
}

static int run(collect *c, dv2_embed_model *m, const dv2_embed_cfg *cfg, const char *ds,
               const uint64_t *skip, size_t nskip, dv2_embed_stats *st, dv2_error *err) {
    c->n = 0;
    c->nwarn = 0;
    c->dim = m->dim;
    dv2_embed_io io = {.sink = collect_sink, .warn = collect_warn, .ctx = c, .skip_ids = skip, .nskip = nskip};
    const char *in[1] = {ds};
    return dv2_embed_run(m, cfg, in, 1, &io, st, err);
}

#define NIMG 13
#define BAD 5

static void test_pixels(void) {
    dv2_embed_model *m = NULL;
    CHECK(dv2_embed_model_pixels(&m, 16, NULL) == 0);
    collect c = {0};
    c.vecs = malloc(256 * m->dim * sizeof(float));
    /* Expected rows: the evaluation transform of every good image, in order. */
    float *want = malloc(NIMG * m->dim * sizeof(float));
    dv2_image img, tmp;
    dv2_image_init(&img);
    dv2_image_init(&tmp);
    for (int i = 0; i < NIMG; i++) {
        uint8_t *data;
        size_t n;
        CHECK(make_image(&data, &n, i) == 0);
        CHECK(dv2_image_decode(&img, data, n, NULL) == 0);
        CHECK(dv2_resize_eval_transform(want + i * m->dim, &img, 18, 16, &tmp, NULL) == 0);
        free(data);
    }
    int batches[3] = {1, 4, 32}, threads[3] = {1, 3, 2};
    for (int t = 0; t < 3; t++) {
        dv2_embed_cfg cfg;
        dv2_embed_cfg_default(&cfg);
        cfg.resize = 18;
        cfg.crop = 16;
        cfg.batch = batches[t];
        cfg.threads = threads[t];
        dv2_embed_stats st;
        dv2_error err;
        int rc = run(&c, m, &cfg, "ds", NULL, 0, &st, &err);
        CHECKF(rc == 0, "%s", err.msg);
        CHECK(st.records == NIMG && st.embedded == NIMG - 1 && st.bad == 1 && c.nwarn == 1);
        CHECK(c.n == NIMG - 1);
        int ok = 1;
        for (size_t r = 0, i = 0; r < c.n; r++, i++) {
            if (i == BAD) i++;
            char key[64];
            snprintf(key, sizeof key, "img/%05zu.%s", i, i % 2 ? "ppm" : "jpg");
            ok &= c.ids[r] == dv2_key_id(key) && c.labels[r] == (int32_t)(i % 3);
            ok &= memcmp(c.vecs + r * m->dim, want + i * m->dim, m->dim * sizeof(float)) == 0;
        }
        CHECKF(ok, "pixel rows differ from the direct transform (batch %d, threads %d)", batches[t], threads[t]);
        /* strict: the corrupt image stops the run, naming it */
        cfg.strict = 1;
        rc = run(&c, m, &cfg, "ds", NULL, 0, &st, &err);
        CHECK(rc == DV2_ECORRUPT && strstr(err.msg, "img/00005") != NULL);
    }
    /* Skip ids: the records of the first 7 images. */
    uint64_t skip[7];
    for (int i = 0; i < 7; i++) {
        char key[64];
        snprintf(key, sizeof key, "img/%05d.%s", i, i % 2 ? "ppm" : "jpg");
        skip[i] = dv2_key_id(key);
    }
    for (int i = 0; i < 7; i++)
        for (int j = i + 1; j < 7; j++)
            if (skip[j] < skip[i]) { uint64_t t = skip[i]; skip[i] = skip[j]; skip[j] = t; }
    dv2_embed_cfg cfg;
    dv2_embed_cfg_default(&cfg);
    cfg.resize = 18;
    cfg.crop = 16;
    cfg.batch = 3;
    cfg.threads = 2;
    dv2_embed_stats st;
    CHECK(run(&c, m, &cfg, "ds", skip, 7, &st, NULL) == 0);
    CHECK(st.skipped == 7 && c.n == NIMG - 7 && st.bad == 0);
    CHECK(c.n > 0 && memcmp(c.vecs, want + 7 * m->dim, m->dim * sizeof(float)) == 0);
    /* A missing input is an error. */
    dv2_error err;
    CHECK(run(&c, m, &cfg, "no-such-dataset", NULL, 0, &st, &err) != 0);
    free(want);
    free(c.vecs);
    dv2_image_free(&img);
    dv2_image_free(&tmp);
    dv2_embed_model_free(m);
}

/* Rows of the engine against dv2_vit_pass_forward on the same pixels. */
static void test_vit(void) {
    const int S = 28;
    dv2_vit_pass *ps = NULL;
    dv2_vit vit;
    dv2_arch arch;
    dv2_error err;
    CHECK(dv2_embed_vit_baseline_arch(&arch, "vit_small", NULL) == 0);
    CHECK(dv2_vit_init(&vit, &arch, tu_cpu(), 0, NULL) == 0);
    dv2_rng rng;
    dv2_rng_seed(&rng, 7, 0);
    CHECK(dv2_vit_init_weights(&vit, &rng, NULL) == 0);
    /* Pixels of the good images from the pixel extractor. */
    dv2_embed_model *pm = NULL;
    CHECK(dv2_embed_model_pixels(&pm, S, NULL) == 0);
    collect px = {0};
    px.vecs = malloc(256 * pm->dim * sizeof(float));
    dv2_embed_cfg cfg;
    dv2_embed_cfg_default(&cfg);
    cfg.resize = 32;
    cfg.crop = S;
    cfg.batch = 5;
    cfg.threads = 2;
    CHECK(run(&px, pm, &cfg, "ds", NULL, 0, NULL, NULL) == 0);
    int n = (int)px.n, D = arch.embed_dim, g = S / 14, N = g * g;
    dv2_vit_group grp = {.n_img = n, .height = S, .width = S};
    CHECK(dv2_vit_pass_create(&ps, &vit, &grp, 1, DV2_VIT_KEEP_BLOCKS, &err) == 0);
    const float *imgs[1] = {px.vecs};
    CHECK(dv2_vit_pass_forward(ps, imgs, NULL, NULL, &err) == 0);
    const float *tok = dv2_vit_pass_output(ps);
    float *l10 = malloc((size_t)dv2_vit_pass_tokens(ps) * D * sizeof(float));
    CHECK(dv2_vit_pass_layer(ps, arch.depth - 2, l10, &err) == 0);

    const char *feats[5] = {"cls", "avgpool", "clsavg", "patch", "layers"};
    for (int f = 0; f < 5; f++) {
        dv2_embed_vit_opts vo;
        dv2_embed_vit_opts_default(&vo);
        vo.arch = "vit_small";
        vo.seed = 7;
        vo.size = S;
        vo.features = f < 4 ? feats[f] : "cls";
        vo.layers = f == 4 ? 2 : 0;
        dv2_embed_model *m = NULL;
        int rc = dv2_embed_model_vit(&m, &vo, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        collect c = {0};
        c.vecs = malloc(256 * m->dim * sizeof(float));
        rc = run(&c, m, &cfg, "ds", NULL, 0, NULL, &err);
        CHECKF(rc == 0 && c.n == (size_t)n, "%s", err.msg);
        size_t dim = m->dim;
        float *want = calloc((size_t)n * dim, sizeof(float));
        for (int i = 0; i < n; i++) {
            float *w = want + (size_t)i * dim;
            const float *cls = tok + (size_t)dv2_vit_pass_row(ps, 0, i, 0) * D;
            float *avg = f == 1 ? w : f == 2 ? w + D : f == 4 ? w + 2 * D : NULL;
            if (f == 0 || f == 2) memcpy(w, cls, D * sizeof(float));
            if (f == 4) {
                memcpy(w, l10 + (size_t)dv2_vit_pass_row(ps, 0, i, 0) * D, D * sizeof(float));
                memcpy(w + D, cls, D * sizeof(float));
            }
            for (int j = 0; j < N; j++) {
                const float *p = tok + (size_t)dv2_vit_pass_row(ps, 0, i, 1 + j) * D;
                if (f == 3) memcpy(w + (size_t)j * D, p, D * sizeof(float));
                if (avg) for (int d = 0; d < D; d++) avg[d] += p[d];
            }
            if (avg) for (int d = 0; d < D; d++) avg[d] /= (float)N;
        }
        char what[64];
        snprintf(what, sizeof what, "vit %s", feats[f]);
        /* Same ops on the same inputs; batches of 5 vs one pass of all: the
         * per-token math does not depend on the batch, except GEMM blocking. */
        tu_close(what, c.vecs, want, (long)n * (long)dim, 1e-5, 1e-4);
        free(want);
        free(c.vecs);
        dv2_embed_model_free(m);
    }
    free(l10);
    dv2_vit_pass_free(ps);

    /* Weight files: the random model round-trips; a wrong shape and a missing
     * tensor are errors naming the tensor. */
    int nt = dv2_params_count(&vit.params);
    dv2_safetensors_entry *e = calloc((size_t)nt, sizeof *e);
    float *host = malloc(vit.params.numel * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        const dv2_param_info *pi = dv2_params_info(&vit.params, i);
        CHECK(dv2_params_get(&vit.params, i, host + off, NULL) == 0);
        e[i].name = pi->name;
        e[i].data = host + off;
        e[i].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) e[i].shape[d] = pi->shape[d];
        off += pi->numel;
    }
    CHECK(dv2_weights_write("good.safetensors", 1, e, (size_t)nt, &arch, NULL, NULL, 0, NULL) == 0);
    dv2_embed_vit_opts vo;
    dv2_embed_vit_opts_default(&vo);
    vo.weights = "good.safetensors";
    vo.size = S;
    dv2_embed_model *m = NULL;
    CHECKF(dv2_embed_model_vit(&m, &vo, &err) == 0, "%s", err.msg);
    dv2_embed_model_free(m);
    int q = dv2_params_find(&vit.params, "blocks.3.attn.qkv.weight");
    CHECK(q >= 0);
    if (q >= 0) {
        e[q].shape[0] -= 3; /* data is longer than needed; the writer takes numel from shape */
        CHECK(dv2_weights_write("bad.safetensors", 1, e, (size_t)nt, &arch, NULL, NULL, 0, NULL) == 0);
        vo.weights = "bad.safetensors";
        CHECK(dv2_embed_model_vit(&m, &vo, &err) == DV2_ECORRUPT);
        CHECKF(strstr(err.msg, "blocks.3.attn.qkv.weight") != NULL, "%s", err.msg);
        e[q].shape[0] += 3;
        e[q] = e[nt - 1]; /* drop the tensor */
        CHECK(dv2_weights_write("miss.safetensors", 1, e, (size_t)nt - 1, &arch, NULL, NULL, 0, NULL) == 0);
        vo.weights = "miss.safetensors";
        CHECK(dv2_embed_model_vit(&m, &vo, &err) != 0);
        CHECKF(strstr(err.msg, "blocks.3.attn.qkv.weight") != NULL, "%s", err.msg);
    }
    free(e);
    free(host);
    free(px.vecs);
    dv2_embed_model_free(pm);
    dv2_vit_free(&vit);
}

/* An extractor whose row for the third image of each batch is NaN: the
 * engine stops there naming the record, and the sink never sees the row. */
static int nan_forward(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                       dv2_error *err) {
    (void)patch;
    (void)err;
    memcpy(out, img, (size_t)n * m->dim * sizeof(float));
    if (n > 2) out[2 * m->dim + 1] = NAN;
    return 0;
}
static void nan_free(dv2_embed_model *m) { free(m); }
static const dv2_embed_model_ops nan_ops = {nan_forward, nan_free};

static void test_nonfinite(void) {
    dv2_embed_model *m = calloc(1, sizeof *m);
    m->ops = &nan_ops;
    m->size = 16;
    m->dim = 3 * 16 * 16;
    dv2_embed_cfg cfg;
    dv2_embed_cfg_default(&cfg);
    cfg.resize = 18;
    cfg.crop = 16;
    cfg.batch = 4;
    collect c = {0};
    c.vecs = malloc(256 * m->dim * sizeof(float));
    dv2_error err;
    dv2_error_clear(&err);
    int rc = run(&c, m, &cfg, "ds", NULL, 0, NULL, &err);
    CHECK(rc == DV2_ECORRUPT);
    CHECKF(strstr(err.msg, "img/00002.jpg") && strstr(err.msg, "non-finite"), "%s", err.msg);
    CHECK(c.n == 0);
    free(c.vecs);
    dv2_embed_model_free(m);
}

/* Writes a random-init vit_small (seed 7) to path; with bad, that tensor
 * gets a wrong first dimension; with nan, its element 3 becomes NaN; img_size
 * > 0 builds (and records) the position table for that input side. */
static int write_model(const char *path, const char *bad, const char *nan, int img_size) {
    dv2_arch arch;
    dv2_vit vit;
    dv2_error err;
    dv2_rng rng;
    dv2_rng_seed(&rng, 7, 0);
    int brc = dv2_embed_vit_baseline_arch(&arch, "vit_small", &err);
    if (!brc && img_size > 0) arch.img_size = img_size;
    if (brc || dv2_vit_init(&vit, &arch, tu_cpu(), 0, &err) ||
        dv2_vit_init_weights(&vit, &rng, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int nt = dv2_params_count(&vit.params), rc = 0;
    dv2_safetensors_entry *e = calloc((size_t)nt, sizeof *e);
    float *host = malloc(vit.params.numel * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < nt && !rc; i++) {
        const dv2_param_info *pi = dv2_params_info(&vit.params, i);
        rc = dv2_params_get(&vit.params, i, host + off, &err);
        e[i].name = pi->name;
        e[i].data = host + off;
        e[i].ndim = pi->ndim;
        for (int d = 0; d < pi->ndim; d++) e[i].shape[d] = pi->shape[d];
        if (bad && !strcmp(bad, pi->name)) e[i].shape[0] -= 1;
        if (nan && !strcmp(nan, pi->name) && pi->numel > 3) host[off + 3] = NAN;
        off += pi->numel;
    }
    if (!rc) rc = dv2_weights_write(path, 1, e, (size_t)nt, &arch, NULL, NULL, 0, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(e);
    free(host);
    dv2_vit_free(&vit);
    return rc ? 1 : 0;
}

/* dv2_embed_done_ids: the ids of the first rows of an output, sorted; fewer
 * when the file holds fewer; none for 0 rows; an error for a missing file. */
static void test_done_ids(void) {
    dv2_error err = {0};
    dv2_matrix_info info;
    dv2_matrix_info_init(&info, DV2_MATRIX_F32, 2);
    dv2_matrix_writer *w = NULL;
    const uint64_t ids[5] = {50, 7, 900, 7000000000ull, 8};
    const float v[10] = {0};
    CHECKF(dv2_matrix_writer_open(&w, "done.emb", &info, NULL, &err) == 0, "%s", err.msg);
    CHECK(w && dv2_matrix_writer_write(w, ids, NULL, v, 5, &err) == 0);
    CHECK(w && dv2_matrix_writer_close(w, &err) == 0);
    uint64_t *got = NULL;
    size_t n = 0;
    CHECKF(dv2_embed_done_ids("done.emb", 3, &got, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 3 && got && got[0] == 7 && got[1] == 50 && got[2] == 900);
    free(got);
    CHECK(dv2_embed_done_ids("done.emb", 99, &got, &n, &err) == 0);
    CHECK(n == 5 && got && got[0] == 7 && got[1] == 8 && got[4] == 7000000000ull);
    free(got);
    CHECK(dv2_embed_done_ids("done.emb", 0, &got, &n, &err) == 0 && got == NULL && n == 0);
    CHECK(dv2_embed_done_ids("missing.emb", 2, &got, &n, &err) != 0 && got == NULL && n == 0);
    CHECKF(strstr(err.msg, "missing.emb") != NULL, "%s", err.msg);
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--write-model")) {
        const char *bad = NULL, *nan = NULL;
        int img = 0;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--bad")) bad = argv[i + 1];
            else if (!strcmp(argv[i], "--nan")) nan = argv[i + 1];
            else if (!strcmp(argv[i], "--img-size")) img = atoi(argv[i + 1]);
        }
        return write_model(argv[2], bad, nan, img);
    }
    if (argc >= 4 && !strcmp(argv[1], "--make-dataset")) {
        int corrupt = argc >= 6 && !strcmp(argv[4], "--corrupt") ? atoi(argv[5]) : -1;
        return make_dataset(argv[2], atoi(argv[3]), corrupt);
    }
    if (make_dataset("ds", NIMG, BAD)) return 1;
    test_pixels();
    test_vit();
    test_nonfinite();
    test_done_ids();
    return tu_finish("test_embed");
}
