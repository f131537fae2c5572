/* posembed.c — positional-embedding resampling (see posembed.h): the 1-D
 * weights of PyTorch's bicubic (a = −0.75, border-clamped taps) and
 * antialiased bicubic (a = −0.5, Pillow-style support and renormalization),
 * computed in float the way the PyTorch CPU kernels do, and their separable
 * application.  Upstream gradients accumulate. */
#include "model/posembed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Cubic convolution (Keys), |x| <= 1 and 1 < |x| < 2 pieces. */
static float cc1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static float cc2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

/* The antialiasing filter: bicubic with a = −0.5. */
static float aa_cubic(float x) {
    const float a = -0.5f;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* Source-per-output scale: 1/scale_factor when driven by a scale factor
 * (computed in double, used in float), else in/out. */
static float axis_scale(int n_out, int n_in, float offset) {
    if (offset > 0) {
        double sf = ((double)n_out + (double)offset) / (double)n_in;
        return (float)(1.0 / sf);
    }
    return (float)n_in / (float)n_out;
}

void dv2_posembed_weights(float *w, int n_out, int n_in, float offset, int antialias) {
    memset(w, 0, (size_t)n_out * n_in * sizeof *w);
    float scale = axis_scale(n_out, n_in, offset);
    if (!antialias) {
        const float A = -0.75f;
        for (int o = 0; o < n_out; o++) {
            float real = scale * ((float)o + 0.5f) - 0.5f;
            float fl = floorf(real);
            int i0 = (int)fl;
            float t = real - fl;
            float c[4] = {cc2(t + 1, A), cc1(t, A), cc1(1 - t, A), cc2(2 - t, A)};
            for (int k = 0; k < 4; k++) {
                int idx = i0 - 1 + k;
                idx = idx < 0 ? 0 : idx > n_in - 1 ? n_in - 1 : idx;
                w[(size_t)o * n_in + idx] += c[k];
            }
        }
        return;
    }
    float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    for (int o = 0; o < n_out; o++) {
        float center = scale * ((float)o + 0.5f);
        long xmin = (long)(center - support + 0.5f);
        if (xmin < 0) xmin = 0;
        long xmax = (long)(center + support + 0.5f);
        if (xmax > n_in) xmax = n_in;
        float total = 0;
        for (long j = xmin; j < xmax; j++) {
            float v = aa_cubic(((float)j - center + 0.5f) * invscale);
            w[(size_t)o * n_in + j] = v;
            total += v;
        }
        if (total != 0)
            for (long j = xmin; j < xmax; j++) w[(size_t)o * n_in + j] /= total;
    }
}

int dv2_posembed_plan_init(dv2_posembed_plan *p, int M, int oh, int ow, float offset, int antialias,
                           dv2_error *err) {
    memset(p, 0, sizeof *p);
    if (M < 1 || oh < 1 || ow < 1 || M > 4096 || oh > 4096 || ow > 4096)
        return dv2_error_set(err, DV2_EINVAL, "posembed: grid sizes %d -> %dx%d out of range", M, oh, ow);
    if (!(offset >= 0 && offset < 1))
        return dv2_error_set(err, DV2_EINVAL, "posembed: interpolate_offset %g out of [0, 1)", (double)offset);
    p->M = M;
    p->oh = oh;
    p->ow = ow;
    p->identity = oh == M && ow == M;
    p->wy = malloc((size_t)oh * M * sizeof *p->wy);
    p->wx = malloc((size_t)ow * M * sizeof *p->wx);
    if (!p->wy || !p->wx) {
        dv2_posembed_plan_free(p);
        return dv2_error_set(err, DV2_ENOMEM, "posembed: out of memory");
    }
    dv2_posembed_weights(p->wy, oh, M, offset, antialias);
    dv2_posembed_weights(p->wx, ow, M, offset, antialias);
    return DV2_OK;
}

void dv2_posembed_plan_free(dv2_posembed_plan *p) {
    if (!p) return;
    free(p->wy);
    free(p->wx);
    p->wy = p->wx = NULL;
}

size_t dv2_posembed_scratch_floats(const dv2_posembed_plan *p, int D) {
    return p->identity ? 0 : (size_t)p->oh * p->M * D;
}
