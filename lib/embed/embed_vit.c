/* embed_vit.c — ViT feature extractor for the embedding engine (see
 * embed_vit.h): weight loading (lib/model/weights.h), random-init
 * baselines, the forward through lib/model/vit.h on the CPU backend, the row
 * layouts, and the PCA picture of patch features. */
#include "embed/embed_vit.h"

#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/afile.h"
#include "core/hash.h"
#include "model/arch.h"
#include "image/image.h"
#include "ops/ops.h"
#include "ops/params.h"
#include "image/resize.h"
#include "core/rng.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "model/weights_load.h"
#include "model/vit.h"

enum { F_CLS, F_AVGPOOL, F_CLSAVG, F_PATCH, F_LAYERS };

typedef struct vit_model {
    dv2_embed_model base;
    dv2_vit vit;
    int vit_ready;
    int kind, layers;
    const dv2_backend *be;
    dv2_vit_pass *ps;       /* cached for batch size ps_n */
    int ps_n;
    float *d_img;           /* device input, ps_n x 3 x S x S */
    float *h_tok;           /* host copy of (T, D) tokens */
    float *d_layer;         /* device (T, D) for intermediate layers */
    size_t tok_cap;
    dv2_backend *own_be; /* opened here when the caller gave no backend */
} vit_model;

void dv2_embed_vit_opts_default(dv2_embed_vit_opts *o) {
    memset(o, 0, sizeof *o);
    o->features = "cls";
}

int dv2_embed_vit_baseline_arch(dv2_arch *a, const char *name, dv2_error *err) {
    int rc = dv2_arch_preset(a, name, err);
    if (rc) return rc;
    /* The training init (LayerScale 1e-5) makes every block a near no-op, so
     * the class token of a random network is the same vector for every
     * image.  With 1.0 (the released models' scale) the blocks mix the patch
     * tokens into it and random features tell images apart. */
    a->layerscale_init = 1.0f;
    return 0;
}

int dv2_embed_vit_default_size(const dv2_arch *a, int from_metadata) {
    return from_metadata && a->img_size > 0 && a->img_size < 224 ? a->img_size : 224;
}

static void vit_release_pass(vit_model *v) {
    dv2_vit_pass_free(v->ps);
    v->ps = NULL;
    v->ps_n = 0;
    if (v->be) {
        v->be->free(v->be, v->d_img);
        v->be->free(v->be, v->d_layer);
    }
    v->d_img = v->d_layer = NULL;
    free(v->h_tok);
    v->h_tok = NULL;
}

static void vit_free(dv2_embed_model *m) {
    vit_model *v = (vit_model *)m;
    vit_release_pass(v);
    if (v->vit_ready) dv2_vit_free(&v->vit);
    dv2_backend_close(v->own_be);
    free(v);
}

static int vit_prepare(vit_model *v, int n, dv2_error *err) {
    if (v->ps && v->ps_n == n) return 0;
    vit_release_pass(v);
    dv2_vit_group g = {.n_img = n, .height = v->base.size, .width = v->base.size};
    int rc = dv2_vit_pass_create(&v->ps, &v->vit, &g, 1, v->layers ? DV2_VIT_KEEP_BLOCKS : 0, err);
    if (rc) return rc;
    v->ps_n = n;
    size_t T = (size_t)dv2_vit_pass_tokens(v->ps), D = (size_t)v->vit.arch.embed_dim;
    v->d_img = v->be->alloc(v->be, (size_t)n * 3 * v->base.size * v->base.size * sizeof(float));
    v->h_tok = dv2_malloc_array(T * D, sizeof(float));
    if (v->layers) v->d_layer = v->be->alloc(v->be, T * D * sizeof(float));
    if (!v->d_img || !v->h_tok || (v->layers && !v->d_layer))
        return dv2_error_set(err, DV2_ENOMEM, "embed: out of memory for a batch of %d", n);
    return 0;
}

/* Mean of the patch tokens (registers excluded) of image i from host tokens. */
static void avgpool(const vit_model *v, float *out, const float *tok, int i) {
    int D = v->vit.arch.embed_dim, N = dv2_vit_pass_npatch(v->ps, 0);
    int first = 1 + v->vit.arch.num_register_tokens;
    for (int d = 0; d < D; d++) out[d] = 0;
    for (int j = 0; j < N; j++) {
        const float *r = tok + (size_t)dv2_vit_pass_row(v->ps, 0, i, first + j) * D;
        for (int d = 0; d < D; d++) out[d] += r[d];
    }
    for (int d = 0; d < D; d++) out[d] /= (float)N;
}

static int vit_forward(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                       dv2_error *err) {
    vit_model *v = (vit_model *)m;
    int rc = vit_prepare(v, n, err);
    if (rc) return rc;
    const dv2_backend *be = v->be;
    size_t npix = (size_t)n * 3 * m->size * m->size;
    if ((rc = be->to_device(be, v->d_img, img, npix * sizeof(float))))
        return dv2_error_set(err, rc, "embed: cannot copy the batch to the device");
    const float *imgs[1] = {v->d_img};
    if ((rc = dv2_vit_pass_forward(v->ps, imgs, NULL, NULL, err))) return rc;
    int D = v->vit.arch.embed_dim, N = m->npatch, first = 1 + v->vit.arch.num_register_tokens;
    size_t T = (size_t)dv2_vit_pass_tokens(v->ps);
    if ((rc = be->to_host(be, v->h_tok, dv2_vit_pass_output(v->ps), T * D * sizeof(float))))
        return dv2_error_set(err, rc, "embed: cannot copy tokens from the device");
    const float *tok = v->h_tok;
    for (int i = 0; i < n; i++) {
        float *row = out + (size_t)i * m->dim;
        const float *cls = tok + (size_t)dv2_vit_pass_row(v->ps, 0, i, 0) * D;
        switch (v->kind) {
        case F_CLS: memcpy(row, cls, D * sizeof(float)); break;
        case F_AVGPOOL: avgpool(v, row, tok, i); break;
        case F_CLSAVG:
            memcpy(row, cls, D * sizeof(float));
            avgpool(v, row + D, tok, i);
            break;
        case F_PATCH:
            for (int j = 0; j < N; j++)
                memcpy(row + (size_t)j * D, tok + (size_t)dv2_vit_pass_row(v->ps, 0, i, first + j) * D, D * sizeof(float));
            break;
        case F_LAYERS: avgpool(v, row + (size_t)v->layers * D, tok, i); break;
        }
        if (patch)
            for (int j = 0; j < N; j++)
                memcpy(patch + ((size_t)i * N + j) * D, tok + (size_t)dv2_vit_pass_row(v->ps, 0, i, first + j) * D,
                       D * sizeof(float));
    }
    if (v->kind == F_LAYERS) {
        /* CLS of the last `layers` blocks through the final norm, earlier first. */
        float *h_layer = dv2_malloc_array(T * D, sizeof(float));
        if (!h_layer) return dv2_error_set(err, DV2_ENOMEM, "embed: out of memory");
        int depth = v->vit.arch.depth;
        for (int l = 0; l < v->layers && !rc; l++) {
            int block = depth - v->layers + l;
            rc = dv2_vit_pass_layer(v->ps, block, v->d_layer, err);
            if (!rc && be->to_host(be, h_layer, v->d_layer, T * D * sizeof(float)))
                rc = dv2_error_set(err, DV2_EIO, "embed: cannot copy tokens from the device");
            for (int i = 0; i < n && !rc; i++)
                memcpy(out + (size_t)i * m->dim + (size_t)l * D,
                       h_layer + (size_t)dv2_vit_pass_row(v->ps, 0, i, 0) * D, D * sizeof(float));
        }
        free(h_layer);
        if (rc) return rc;
    }
    return 0;
}

static const dv2_embed_model_ops vit_ops = {vit_forward, vit_free};

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Copies every parameter of v->vit from the file (dv2_weights_load's rules:
 * canonical names, exact shapes up to leading 1s, mask_token optional). */
static int load_weights(vit_model *v, const dv2_safetensors_file *f, dv2_error *err) {
    char needs[96];
    snprintf(needs, sizeof needs, "the architecture (%s)", v->vit.arch.name);
    return dv2_weights_load(&v->vit.params, f, NULL, needs, NULL, NULL, err);
}

/* XXH64 over every parameter (name, then its float32 values) in model
 * order: the same digest for the same weights whatever the file's name or
 * its tensor order.  mask_token is left out: it is training-only, often not
 * exported, and never changes a row. */
static int params_digest(const vit_model *v, uint64_t *out, dv2_error *err) {
    const dv2_params *ps = &v->vit.params;
    float *buf = NULL;
    size_t cap = 0;
    dv2_xxh64_state h;
    dv2_xxh64_init(&h, 0);
    int rc = 0;
    for (int i = 0; i < dv2_params_count(ps) && !rc; i++) {
        const dv2_param_info *pi = dv2_params_info(ps, i);
        if (!strcmp(pi->name, "mask_token")) continue;
        if (pi->numel > cap) {
            free(buf);
            cap = pi->numel;
            if (!(buf = dv2_malloc_array(cap, sizeof(float)))) {
                rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
                break;
            }
        }
        if ((rc = dv2_params_get(ps, i, buf, err))) break;
        dv2_xxh64_update(&h, pi->name, strlen(pi->name) + 1);
        dv2_xxh64_update(&h, buf, pi->numel * sizeof(float));
    }
    free(buf);
    *out = dv2_xxh64_digest(&h);
    return rc;
}

/* A weight file that is not safetensors or not in DINOv2 names: say what it
 * is and how to convert it, instead of the parser's complaint. */
static void explain_foreign_weights(const char *path, const dv2_safetensors_file *f, dv2_error *err) {
    if (f) {
        for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
            const char *n = dv2_safetensors_at(f, i)->name;
            if (!strncmp(n, "embeddings.", 11) || strstr(n, "encoder.layer.")) {
                dv2_error_set(err, DV2_ECORRUPT,
                              "%s: a Hugging Face transformers checkpoint (tensor %s), not "
                              "DINOv2 names: convert it first: scripts/convert-weights %s OUT.safetensors",
                              path, n, path);
                return;
            }
        }
        return;
    }
    uint8_t b[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    long got = dv2_read_full(fd, b, sizeof b);
    close(fd);
    const char *what = NULL;
    if (got == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4)
        what = "a PyTorch checkpoint (torch.save zip)";
    else if (got >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
        what = "a PyTorch checkpoint (pickle)";
    if (what)
        dv2_error_set(err, DV2_ECORRUPT,
                      "%s: %s, not safetensors: convert it first: scripts/convert-weights %s OUT.safetensors",
                      path, what, path);
}

int dv2_embed_model_vit(dv2_embed_model **out, const dv2_embed_vit_opts *o, dv2_error *err) {
    *out = NULL;
    int kind;
    if (o->layers > 0) kind = F_LAYERS;
    else if (!strcmp(o->features, "cls")) kind = F_CLS;
    else if (!strcmp(o->features, "avgpool")) kind = F_AVGPOOL;
    else if (!strcmp(o->features, "clsavg")) kind = F_CLSAVG;
    else if (!strcmp(o->features, "patch")) kind = F_PATCH;
    else return dv2_error_set(err, DV2_EINVAL, "unknown features '%s'", o->features);
    vit_model *v = calloc(1, sizeof *v);
    if (!v) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    v->base.ops = &vit_ops;
    v->be = o->backend;
    if (!v->be) {
        int brc = dv2_backend_open(&v->own_be, "cpu", NULL, 0, err);
        if (brc) {
            free(v);
            return brc;
        }
        v->be = v->own_be;
    }
    v->kind = kind;
    v->layers = o->layers;
    dv2_arch arch;
    dv2_safetensors_file *f = NULL;
    int rc;
    int size = o->size;
    if (o->weights) {
        if ((rc = dv2_safetensors_open(&f, o->weights, err))) {
            if (rc == DV2_ECORRUPT) explain_foreign_weights(o->weights, NULL, err);
            goto fail;
        }
        if ((rc = dv2_weights_arch(f, &arch, err))) {
            dv2_error_prefix(err, "%s", o->weights);
            explain_foreign_weights(o->weights, f, err);
            goto fail;
        }
        if (size <= 0) size = dv2_embed_vit_default_size(&arch, dv2_safetensors_meta(f, "img_size") != NULL);
    } else {
        if ((rc = dv2_embed_vit_baseline_arch(&arch, o->arch ? o->arch : "", err))) goto fail;
        if (size <= 0) size = 224;
    }
    if (size % arch.patch_size) {
        rc = dv2_error_set(err, DV2_EINVAL, "--size %d is not a multiple of the patch size %d", size, arch.patch_size);
        goto fail;
    }
    if (o->layers > arch.depth) {
        rc = dv2_error_set(err, DV2_EINVAL, "--layers %d: the model has %d blocks", o->layers, arch.depth);
        goto fail;
    }
    if ((rc = dv2_vit_init(&v->vit, &arch, v->be, 0, err))) goto fail;
    v->vit_ready = 1;
    if (f) {
        if ((rc = load_weights(v, f, err))) goto fail;
        snprintf(v->base.name, sizeof v->base.name, "%s (%s)", base_name(o->weights), arch.name);
    } else {
        dv2_rng rng;
        dv2_rng_seed(&rng, o->seed, 0);
        if ((rc = dv2_vit_init_weights(&v->vit, &rng, err))) goto fail;
        snprintf(v->base.name, sizeof v->base.name, "random %s seed %llu", arch.name, (unsigned long long)o->seed);
    }
    dv2_safetensors_close(f);
    f = NULL;
    uint64_t digest;
    if ((rc = params_digest(v, &digest, err))) goto fail;
    int D = arch.embed_dim, g = size / arch.patch_size;
    v->base.size = size;
    v->base.patch_grid = g;
    v->base.npatch = g * g;
    v->base.patch_dim = D;
    switch (kind) {
    case F_CLS: v->base.dim = (size_t)D; break;
    case F_AVGPOOL: v->base.dim = (size_t)D; break;
    case F_CLSAVG: v->base.dim = (size_t)2 * D; break;
    case F_PATCH: v->base.dim = (size_t)g * g * D; break;
    default: v->base.dim = (size_t)(o->layers + 1) * D; break;
    }
    if (kind == F_LAYERS)
        snprintf(v->base.features, sizeof v->base.features, "cls of last %d blocks + avgpool", o->layers);
    else
        snprintf(v->base.features, sizeof v->base.features, "%s", o->features);
    /* What the model puts into a row (embed.h): the weights by digest (the
     * file's name does not matter), the architecture including the
     * position-embedding interpolation, the init of a random baseline, the
     * layout and the input size. */
    char init[96] = "file";
    if (!o->weights)
        snprintf(init, sizeof init, "random seed %llu layerscale %g", (unsigned long long)o->seed,
                 (double)arch.layerscale_init);
    snprintf(v->base.params, sizeof v->base.params,
             "model=vit\ninit=%s\nweights=xxh64:%016llx\narch=%s D%d L%d H%d p%d img%d R%d %s%d "
             "interpolate %g/%d\nfeatures=%s\nsize=%d\n",
             init, (unsigned long long)digest, arch.name, arch.embed_dim, arch.depth, arch.num_heads,
             arch.patch_size, arch.img_size, arch.num_register_tokens, dv2_arch_ffn_name(arch.ffn_kind),
             arch.ffn_hidden, (double)arch.interpolate_offset, arch.interpolate_antialias,
             v->base.features, size);
    *out = &v->base;
    return 0;
fail:
    dv2_safetensors_close(f);
    vit_free(&v->base);
    return rc;
}

/* ---- PCA picture ---------------------------------------------------------- */

/* Top-3 principal directions of X (N x D, centered in place) by power
 * iteration with deflation on the D x D covariance. */
static int pca3(float *proj /* N x 3 */, float *X, int N, int D) {
    float *C = dv2_malloc_array((size_t)D * D, sizeof(float));
    float *v = malloc((size_t)D * sizeof(float)), *w = malloc((size_t)D * sizeof(float));
    float *vecs = malloc((size_t)3 * D * sizeof(float));
    if (!C || !v || !w || !vecs) {
        free(C); free(v); free(w); free(vecs);
        return DV2_ENOMEM;
    }
    for (int d = 0; d < D; d++) {
        double mu = 0;
        for (int i = 0; i < N; i++) mu += X[(size_t)i * D + d];
        mu /= N;
        for (int i = 0; i < N; i++) X[(size_t)i * D + d] -= (float)mu;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, D, N, 1.0f, X, D, X, D, 0.0f, C, D);
    for (int k = 0; k < 3; k++) {
        for (int d = 0; d < D; d++) v[d] = 1.0f / (float)(d + 1 + k); /* deterministic start */
        for (int it = 0; it < 100; it++) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, D, D, 1.0f, C, D, v, 1, 0.0f, w, 1);
            for (int j = 0; j < k; j++) { /* deflate against earlier components */
                float dot = cblas_sdot(D, w, 1, vecs + (size_t)j * D, 1);
                cblas_saxpy(D, -dot, vecs + (size_t)j * D, 1, w, 1);
            }
            float nrm = cblas_snrm2(D, w, 1);
            if (!(nrm > 0)) break;
            for (int d = 0; d < D; d++) v[d] = w[d] / nrm;
        }
        memcpy(vecs + (size_t)k * D, v, (size_t)D * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 3, D, 1.0f, X, D, vecs, D, 0.0f, proj, 3);
    free(C); free(v); free(w); free(vecs);
    return 0;
}

int dv2_embed_vit_pca_write(const char *dir, const dv2_embed_model *m, const dv2_embed_batch *b,
                            dv2_error *err) {
    if (!b->patch || !m->npatch) return dv2_error_set(err, DV2_EINVAL, "--pca needs patch tokens");
    int S = m->size, N = m->npatch, D = m->patch_dim, g = m->patch_grid;
    float *X = dv2_malloc_array((size_t)N, (size_t)D * sizeof(float));
    float *proj = dv2_malloc_array((size_t)N, 3 * sizeof(float));
    dv2_image pic;
    dv2_image_init(&pic);
    int rc = (!X || !proj) ? dv2_error_set(err, DV2_ENOMEM, "out of memory") : dv2_image_resize_buffer(&pic, 2 * S, S, err);
    for (size_t i = 0; i < b->n && !rc; i++) {
        memcpy(X, b->patch + i * (size_t)N * D, (size_t)N * D * sizeof(float));
        if (pca3(proj, X, N, D)) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); break; }
        float lo[3], hi[3];
        for (int c = 0; c < 3; c++) {
            lo[c] = hi[c] = proj[c];
            for (int j = 0; j < N; j++) {
                float x = proj[(size_t)j * 3 + c];
                if (x < lo[c]) lo[c] = x;
                if (x > hi[c]) hi[c] = x;
            }
        }
        const float *px = b->pixels + i * (size_t)3 * S * S;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                uint8_t *o = pic.rgb + ((size_t)y * 2 * S + x) * 3;
                for (int c = 0; c < 3; c++) {
                    float v = (px[(size_t)c * S * S + (size_t)y * S + x] * dv2_imagenet_std[c] + dv2_imagenet_mean[c]) * 255.0f;
                    o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
                }
                int gy = y * g / S, gx = x * g / S;
                const float *pr = proj + ((size_t)gy * g + gx) * 3;
                uint8_t *q = o + (size_t)S * 3;
                for (int c = 0; c < 3; c++) {
                    float r = hi[c] > lo[c] ? (pr[c] - lo[c]) / (hi[c] - lo[c]) : 0.5f;
                    q[c] = (uint8_t)(r * 255.0f + 0.5f);
                }
            }
        uint8_t *jpg = NULL;
        size_t n = 0;
        if ((rc = dv2_image_encode_jpeg_alloc(&jpg, &n, &pic, 90, err))) break;
        char path[4096];
        snprintf(path, sizeof path, "%s/%016llx.jpg", dir, (unsigned long long)b->ids[i]);
        rc = dv2_write_file_atomic(path, jpg, n, err);
        free(jpg);
    }
    free(X);
    free(proj);
    dv2_image_free(&pic);
    return rc;
}
