/* embed.h — the embedding engine of dv2-embed: records are read from
 * datasets/shards in order, decoded and preprocessed (the evaluation
 * transform of lib/image/resize.h) on worker threads into batch slots, overlapped
 * with the feature extractor running on the previous batch, and the rows are
 * handed to a sink in input order.
 *
 * A feature extractor (dv2_embed_model) turns a batch of normalized images
 * (B, 3, S, S) into rows (B, dim).  Two kinds exist: the pixel baseline (the
 * normalized crop itself, dim 3*S*S), the ViT (lib/embed/embed_vit.c, features
 * cls / avgpool / clsavg / patch / the linear-probe layout) and the SSCD copy
 * detector (lib/embed/embed_sscd.c, fed the square transform).  The engine
 * never prints: bad images go to a warning callback and are counted. */
#ifndef DV2_EMBED_H
#define DV2_EMBED_H

#include <stddef.h>
#include <stdint.h>
#include "format/dataset.h"
#include "format/matrix.h"
#include "core/dv2.h"

/* ---- feature extractors -------------------------------------------------- */

typedef struct dv2_embed_model dv2_embed_model;

typedef struct dv2_embed_model_ops {
    /* out (n, dim) from img (n, 3, size, size); patch (n, npatch, D) host
     * buffer of final-normed patch tokens when not NULL (for --pca). */
    int (*forward)(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                   dv2_error *err);
    void (*free)(dv2_embed_model *m);
} dv2_embed_model_ops;

/* The preprocessing a model wants (dv2_embed_model.transform). */
enum {
    DV2_EMBED_EVAL = 0,  /* bicubic resize of the shorter side, center crop (the DINOv2 evaluations) */
    DV2_EMBED_SQUARE = 1, /* bilinear resize to S x S, aspect not kept (SSCD) */
    DV2_EMBED_SHORT = 2   /* bilinear resize of the shorter side to S, aspect kept, no crop
                           * (SSCD's other recipe): every image its own size, one forward each */
};

struct dv2_embed_model {
    const dv2_embed_model_ops *ops;
    int transform;     /* DV2_EMBED_EVAL, DV2_EMBED_SQUARE or DV2_EMBED_SHORT */
    /* A DV2_EMBED_SHORT model: out (n, dim) from img (n, 3, h, w). */
    int (*forward_hw)(dv2_embed_model *m, float *out, const float *img, int n, int h, int w,
                      dv2_error *err);
    int size;          /* input side S */
    size_t dim;        /* row length */
    int npatch;        /* patch tokens per image (0 for pixels) */
    int patch_grid;    /* side of the patch grid (0 for pixels) */
    int patch_dim;     /* D of a patch token (0 for pixels) */
    char name[256];    /* matrix header "model" */
    char features[256];/* matrix header "features" */
    char params[768];  /* "key=value\n" lines of what the model puts into a row
                        * (kind, weights digest, architecture, init, features,
                        * input size): the matrix header's params */
};

/* The pixel baseline: rows are the normalized (3, size, size) crops. */
int dv2_embed_model_pixels(dv2_embed_model **m, int size, dv2_error *err);
void dv2_embed_model_free(dv2_embed_model *m); /* NULL allowed */

/* L2-normalizes each of n rows of length dim in place (zero rows stay zero). */
void dv2_embed_l2_normalize(float *rows, size_t n, size_t dim);

/* ---- the engine ---------------------------------------------------------- */

typedef struct dv2_embed_cfg {
    int resize;     /* shorter side before cropping (256); 0 = no resize;
                     * unused by a DV2_EMBED_SQUARE model */
    int crop;       /* center crop side (224) = the model's input size */
    int batch;      /* images per forward (>= 1) */
    int threads;    /* decode workers (>= 1) */
    int strict;     /* a bad image stops the run */
    int normalize;  /* L2-normalize rows */
    int want_patch; /* pass patch tokens to the sink (for --pca) */
} dv2_embed_cfg;

void dv2_embed_cfg_default(dv2_embed_cfg *cfg);

/* Appends to info->params everything that determines a row made by m with
 * cfg: m->params, then resize, transform (m->transform), normalize and dtype
 * (info->dtype).
 * dv2-embed --resume refuses to add rows whose description differs. */
int dv2_embed_params(dv2_matrix_info *info, const dv2_embed_model *m, const dv2_embed_cfg *cfg,
                     dv2_error *err);

/* One finished batch, in input order.  ids/labels/keys/vecs have n entries;
 * pixels (n, 3, crop, crop) are the model inputs; patch (n, npatch, D) when
 * want_patch.  Return 0 to go on or a DV2_E* status to stop. */
typedef struct dv2_embed_batch {
    size_t n;
    const uint64_t *ids;
    const int32_t *labels;
    const char *const *keys;
    const float *vecs;
    const float *pixels;
    const float *patch;
} dv2_embed_batch;
typedef int (*dv2_embed_sink_fn)(void *ctx, const dv2_embed_batch *b, dv2_error *err);
/* Called (from the calling thread, in order) for each skipped bad image. */
typedef void (*dv2_embed_warn_fn)(void *ctx, const char *msg);
/* Called after each batch with the running counts. */
typedef void (*dv2_embed_progress_fn)(void *ctx, uint64_t done, uint64_t bytes);

typedef struct dv2_embed_stats {
    uint64_t records;  /* records read */
    uint64_t embedded; /* rows produced */
    uint64_t skipped;  /* ids already present (resume) */
    uint64_t bad;      /* undecodable images skipped */
    uint64_t bytes;    /* encoded bytes read */
} dv2_embed_stats;

typedef struct dv2_embed_io {
    dv2_embed_sink_fn sink;
    dv2_embed_warn_fn warn;         /* may be NULL */
    dv2_embed_progress_fn progress; /* may be NULL */
    void *ctx;
    const uint64_t *skip_ids;       /* sorted ascending; records with these ids are skipped */
    size_t nskip;
} dv2_embed_io;

/* Checks the inputs before a run: each opens as a dataset, a shard or "-";
 * an image file, a directory of images, a tar, a gzip or an IDX file is
 * DV2_EINVAL saying to pack it first with dv2-pack (with the command).
 * *total is the sum of the record counts (manifests, shard indexes), or
 * DV2_DATASET_UNKNOWN when a stream is among them. */
int dv2_embed_check_inputs(const char *const *inputs, int n, uint64_t *total, dv2_error *err);

/* The ids of the first `rows` rows of the matrix at path (a --resume: the
 * writer has checked its header and cut a partial row), sorted ascending,
 * for dv2_embed_io.skip_ids.  Allocates *ids (NULL when rows is 0; the
 * caller frees it); *n may be below rows when the file holds fewer. */
int dv2_embed_done_ids(const char *path, uint64_t rows, uint64_t **ids, size_t *n, dv2_error *err);

/* Runs the pipeline over the inputs (dataset directories, shard files, "-"),
 * opened in order.  stats may be NULL. */
int dv2_embed_run(dv2_embed_model *m, const dv2_embed_cfg *cfg, const char *const *inputs,
                  int ninputs, const dv2_embed_io *io, dv2_embed_stats *stats, dv2_error *err);

#endif
