/* cpu.c — the CPU backend tables: dv2_backend_cpu (host memory for the
 * "device", the float32 reference ops of lib/ops/cpu/cpu_*.c, losses in
 * cpu_loss.c) and dv2_backend_cpu_bf16 (the same with bf16 storage,
 * cpu_bf16.c). */
#include <stdlib.h>
#include <string.h>
#include "core/dv2.h"
#include "ops/cpu/cpu_loss.h"
#include "ops/cpu/cpu.h"

static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(void *p) { free(p); }

static int cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
    return DV2_OK;
}

/* The "device" is host memory, so a transfer is a copy; it is counted so
 * that a test can bound what a training step would move over PCIe. */
static _Atomic uint64_t g_to_host, g_to_device;

static int cpu_to_host(void *dst, const void *src, size_t bytes) {
    g_to_host += bytes;
    return cpu_copy(dst, src, bytes);
}

static int cpu_to_device(void *dst, const void *src, size_t bytes) {
    g_to_device += bytes;
    return cpu_copy(dst, src, bytes);
}

static void cpu_transfers(uint64_t *to_host, uint64_t *to_device) {
    if (to_host) *to_host = g_to_host;
    if (to_device) *to_device = g_to_device;
}

static int cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
    return DV2_OK;
}

static int cpu_sync(void) { return DV2_OK; }

/* The entries both CPU tables share: memory and the ops that store f32. */
#define CPU_SHARED_ENTRIES \
    .alloc = cpu_alloc, \
    .free = cpu_free, \
    .to_host = cpu_to_host, \
    .to_device = cpu_to_device, \
    .transfers = cpu_transfers, \
    .copy = cpu_copy, \
    .zero = cpu_zero, \
    .sync = cpu_sync, \
    .posembed_forward = dv2_cpu_posembed_forward, \
    .posembed_backward = dv2_cpu_posembed_backward, \
    .embed_tokens_forward = dv2_cpu_embed_tokens_forward, \
    .embed_tokens_backward = dv2_cpu_embed_tokens_backward, \
    .layernorm_forward = dv2_cpu_layernorm_forward, \
    .layernorm_backward = dv2_cpu_layernorm_backward, \
    .l2norm_forward = dv2_cpu_l2norm_forward, \
    .l2norm_backward = dv2_cpu_l2norm_backward, \
    .weightnorm_forward = dv2_cpu_weightnorm_forward, \
    .weightnorm_backward = dv2_cpu_weightnorm_backward, \
    .gelu_backward = dv2_cpu_gelu_backward, \
    .swiglu_backward = dv2_cpu_swiglu_backward, \
    .residual_forward = dv2_cpu_residual_forward, \
    .residual_backward = dv2_cpu_residual_backward, \
    .gather_rows = dv2_cpu_gather_rows, \
    .scatter_add_rows = dv2_cpu_scatter_add_rows, \
    .add = dv2_cpu_add, \
    .scale = dv2_cpu_scale, \
    .sumsq = dv2_cpu_sumsq, \
    .all_finite = dv2_cpu_all_finite, \
    .softmax_center_forward = dv2_cpu_softmax_center_forward, \
    .sinkhorn_knopp_forward = dv2_cpu_sinkhorn_knopp_forward, \
    .koleo_forward = dv2_cpu_koleo_forward, \
    .koleo_backward = dv2_cpu_koleo_backward, \
    .allreduce_sum = dv2_cpu_allreduce_sum, \
    .reduce_scatter_sum = dv2_cpu_reduce_scatter_sum, \
    .all_gather = dv2_cpu_all_gather, \
    .adamw_step = dv2_cpu_adamw_step, \
    .ema_update = dv2_cpu_ema_update,

const dv2_backend dv2_backend_cpu = {
    .name = "cpu",
    CPU_SHARED_ENTRIES
    .linear_forward = dv2_cpu_linear_forward,
    .linear_backward = dv2_cpu_linear_backward,
    .patch_embed_forward = dv2_cpu_patch_embed_forward,
    .patch_embed_backward = dv2_cpu_patch_embed_backward,
    .attention_forward = dv2_cpu_attention_forward,
    .attention_backward = dv2_cpu_attention_backward,
    .gelu_forward = dv2_cpu_gelu_forward,
    .swiglu_forward = dv2_cpu_swiglu_forward,
};

/* bf16 storage emulated by rounding (cpu_bf16.c). */
const dv2_backend dv2_backend_cpu_bf16 = {
    .name = "cpu-bf16",
    CPU_SHARED_ENTRIES
    .linear_forward = dv2_cpu_bf16_linear_forward,
    .linear_backward = dv2_cpu_bf16_linear_backward,
    .patch_embed_forward = dv2_cpu_bf16_patch_embed_forward,
    .patch_embed_backward = dv2_cpu_bf16_patch_embed_backward,
    .attention_forward = dv2_cpu_bf16_attention_forward,
    .attention_backward = dv2_cpu_bf16_attention_backward,
    .gelu_forward = dv2_cpu_bf16_gelu_forward,
    .swiglu_forward = dv2_cpu_bf16_swiglu_forward,
};
