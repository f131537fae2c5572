/* cpu_posembed.c — applying the positional-embedding resampling (spec §2.4)
 * on the CPU: the separable weights wy (oh, M) and wx (ow, M) that
 * model/posembed.c builds once per grid size, rows first, then columns;
 * backward applies the transposes in the other order.  NULL weights mean
 * the identity (the grid is unchanged). */
#include "ops/cpu/cpu.h"

#include <string.h>

void dv2_cpu_posembed_forward(float *out, float *scratch, const float *pos, const float *wy,
                              const float *wx, int M, int oh, int ow, int D) {
    memcpy(out, pos, (size_t)D * sizeof *out); /* CLS */
    if (!wy || !wx) {
        memcpy(out + D, pos + D, (size_t)M * M * D * sizeof *out);
        return;
    }
    const float *g = pos + D; /* (M, M, D) */
    /* rows: scratch (oh, M, D) = Σ_iy wy[oy, iy] g[iy] */
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < oh; oy++) {
        float *t = scratch + (size_t)oy * M * D;
        memset(t, 0, (size_t)M * D * sizeof *t);
        for (int iy = 0; iy < M; iy++) {
            float w = wy[(size_t)oy * M + iy];
            if (w == 0) continue;
            const float *src = g + (size_t)iy * M * D;
            for (size_t k = 0; k < (size_t)M * D; k++) t[k] += w * src[k];
        }
    }
    /* columns: out (oh, ow, D) = Σ_ix wx[ox, ix] scratch[oy, ix] */
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            float *o = out + D + ((size_t)oy * ow + ox) * D;
            memset(o, 0, (size_t)D * sizeof *o);
            for (int ix = 0; ix < M; ix++) {
                float w = wx[(size_t)ox * M + ix];
                if (w == 0) continue;
                const float *src = scratch + ((size_t)oy * M + ix) * D;
                for (int d = 0; d < D; d++) o[d] += w * src[d];
            }
        }
}

void dv2_cpu_posembed_backward(float *dpos, float *scratch, const float *dout, const float *wy,
                               const float *wx, int M, int oh, int ow, int D) {
    for (int d = 0; d < D; d++) dpos[d] += dout[d];
    if (!wy || !wx) {
        for (size_t k = 0; k < (size_t)M * M * D; k++) dpos[D + k] += dout[D + k];
        return;
    }
    const float *go = dout + D; /* (oh, ow, D) */
    /* scratch (oh, M, D) = Σ_ox wx[ox, ix] go[oy, ox] */
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < oh; oy++)
        for (int ix = 0; ix < M; ix++) {
            float *t = scratch + ((size_t)oy * M + ix) * D;
            memset(t, 0, (size_t)D * sizeof *t);
            for (int ox = 0; ox < ow; ox++) {
                float w = wx[(size_t)ox * M + ix];
                if (w == 0) continue;
                const float *src = go + ((size_t)oy * ow + ox) * D;
                for (int d = 0; d < D; d++) t[d] += w * src[d];
            }
        }
    /* dpos grid (M, M, D) += Σ_oy wy[oy, iy] scratch[oy] */
    float *g = dpos + D;
#pragma omp parallel for schedule(static)
    for (int iy = 0; iy < M; iy++) {
        float *dst = g + (size_t)iy * M * D;
        for (int oy = 0; oy < oh; oy++) {
            float w = wy[(size_t)oy * M + iy];
            if (w == 0) continue;
            const float *src = scratch + (size_t)oy * M * D;
            for (size_t k = 0; k < (size_t)M * D; k++) dst[k] += w * src[k];
        }
    }
}
