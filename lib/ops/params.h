/* params.h — the parameters of one model module (a backbone, a head) in one
 * contiguous float buffer on the backend's device, a parallel gradient
 * buffer, and a name table with the official DINOv2 state-dict names
 * ("cls_token", "blocks.3.attn.qkv.weight", "last_layer.weight_g", ...).
 *
 * Flat buffers let AdamW, EMA, gradient clipping, all-reduce and checkpoints
 * work on whole modules at once; the name table maps safetensors tensors to
 * offsets.  Tensors are added first (dv2_params_add), then the buffers are
 * allocated once (dv2_params_alloc); offsets never change afterwards.
 *
 * On a backend whose GEMMs read bf16 weights (be->weights_bf16) the module
 * also keeps data16, the bf16 compute copy of data at the same offsets.  It
 * is current after dv2_params_set / dv2_params_copy, after every adamw_step /
 * ema_update given its slice, and after dv2_params_sync16; code that writes
 * data any other way calls dv2_params_sync16 before the next pass (the
 * cpu-bf16 backend fails a GEMM whose copy is stale). */
#ifndef DV2_PARAMS_H
#define DV2_PARAMS_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "ops/ops.h"

#define DV2_PARAM_NAME_MAX 96
#define DV2_PARAM_MAXDIM 4

typedef struct dv2_param_info {
    char name[DV2_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[DV2_PARAM_MAXDIM];
    size_t offset; /* in floats from the start of data / grad */
    size_t numel;
} dv2_param_info;

typedef struct dv2_params {
    const dv2_backend *be;
    dv2_param_info *t; /* host table, n entries */
    int n, cap;
    size_t numel;      /* total floats */
    float *data;       /* device, numel floats (NULL before alloc) */
    float *grad;       /* device, numel floats, or NULL when allocated without gradients */
    dv2_bf16 *data16;  /* device, numel bf16: the compute copy of data, or NULL (no weights_bf16) */
} dv2_params;

void dv2_params_init(dv2_params *p, const dv2_backend *be);
void dv2_params_free(dv2_params *p);
/* Appends a tensor (before dv2_params_alloc); returns its index or a DV2_E* status. */
int dv2_params_add(dv2_params *p, const char *name, int ndim, const int64_t *shape,
                   dv2_error *err);
/* Allocates data (zeroed), data16 on a weights_bf16 backend (zeroed, the
 * copy of the zeros) and, if with_grad, grad (zeroed). */
int dv2_params_alloc(dv2_params *p, int with_grad, dv2_error *err);
/* Index of a tensor by exact name, or -1. */
int dv2_params_find(const dv2_params *p, const char *name);
/* Iteration: for (i = 0; i < dv2_params_count(p); i++) dv2_params_info(p, i). */
int dv2_params_count(const dv2_params *p);
const dv2_param_info *dv2_params_info(const dv2_params *p, int i);
/* Device pointers of tensor i in data / grad / data16 (NULL without a copy). */
float *dv2_params_data(const dv2_params *p, int i);
float *dv2_params_grad(const dv2_params *p, int i);
const dv2_bf16 *dv2_params_data16(const dv2_params *p, int i);
/* Rewrites the whole compute copy from data (no-op without one), or floats
 * [off, off + n) of it. */
int dv2_params_sync16(dv2_params *p, dv2_error *err);
int dv2_params_sync16_range(dv2_params *p, size_t off, size_t n, dv2_error *err);
/* Zeroes the whole gradient buffer. */
int dv2_params_zero_grad(dv2_params *p);
/* Copies tensor i from / to host memory (numel floats); set also writes
 * the tensor's compute copy. */
int dv2_params_set(dv2_params *p, int i, const float *h_src, dv2_error *err);
int dv2_params_get(const dv2_params *p, int i, float *h_dst, dv2_error *err);
/* Copies all values from src, which must have the same table (same names,
 * shapes, order): teacher ← student at initialization. */
int dv2_params_copy(dv2_params *dst, const dv2_params *src, dv2_error *err);

#endif
