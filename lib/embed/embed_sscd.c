/* embed_sscd.c — SSCD extractor for the embedding engine (see
 * embed_sscd.h): the weight file, the ResNet forward, the row description. */
#include "embed/embed_sscd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors.h"
#include "model/resnet.h"

typedef struct sscd_model {
    dv2_embed_model base;
    dv2_resnet *net;
} sscd_model;

static int sscd_forward(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                        dv2_error *err) {
    (void)patch;
    sscd_model *s = (sscd_model *)m;
    return dv2_resnet_forward(s->net, out, img, n, m->size, m->size, err);
}

static int sscd_forward_hw(dv2_embed_model *m, float *out, const float *img, int n, int h, int w,
                           dv2_error *err) {
    return dv2_resnet_forward(((sscd_model *)m)->net, out, img, n, h, w, err);
}

static void sscd_free(dv2_embed_model *m) {
    sscd_model *s = (sscd_model *)m;
    dv2_resnet_free(s->net);
    free(s);
}

static const dv2_embed_model_ops sscd_ops = {sscd_forward, sscd_free};

int dv2_embed_sscd_is_model(const char *path) {
    dv2_safetensors_file *f = NULL;
    if (dv2_safetensors_open(&f, path, NULL)) return 0;
    int yes = dv2_resnet_is_weights(f);
    dv2_safetensors_close(f);
    return yes;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int dv2_embed_model_sscd(dv2_embed_model **out, const char *path, int size, int keep_aspect, dv2_error *err) {
    *out = NULL;
    if (size == 0) size = DV2_EMBED_SSCD_SIZE;
    if (size < 32 || size > 4096) return dv2_error_set(err, DV2_EINVAL, "sscd: --size %d: expected 32..4096", size);
    dv2_safetensors_file *f = NULL;
    int rc = dv2_safetensors_open(&f, path, err);
    if (rc) return rc;
    dv2_resnet_arch a;
    sscd_model *s = calloc(1, sizeof *s);
    if (!s) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
    if (!rc) rc = dv2_resnet_arch_read(f, &a, err);
    if (!rc) rc = dv2_resnet_create(&s->net, &a, f, err);
    dv2_safetensors_close(f);
    if (rc) {
        if (s) sscd_free(&s->base);
        return rc;
    }
    s->base.ops = &sscd_ops;
    s->base.size = size;
    s->base.dim = (size_t)a.dims;
    s->base.transform = keep_aspect ? DV2_EMBED_SHORT : DV2_EMBED_SQUARE;
    s->base.forward_hw = sscd_forward_hw;
    snprintf(s->base.name, sizeof s->base.name, "%s (%s)", base_name(path), a.name);
    snprintf(s->base.features, sizeof s->base.features, "sscd descriptor (GeM p=%g, L2-normalized)",
             (double)a.gem_p);
    snprintf(s->base.params, sizeof s->base.params,
             "model=sscd\ninit=file\nweights=xxh64:%016llx\narch=%s layers %d,%d,%d,%d groups %d width %d "
             "dims %d gem %g\nfeatures=sscd\nsize=%d%s\n",
             dv2_resnet_digest(s->net), a.name, a.layers[0], a.layers[1], a.layers[2], a.layers[3], a.groups,
             a.width, a.dims, (double)a.gem_p, size, keep_aspect ? " shorter side" : "");
    *out = &s->base;
    return 0;
}
