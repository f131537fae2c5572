/* test_posembed.c — positional-embedding resampling (lib/model/posembed.h,
 * applied by the backend entries posembed_forward/backward):
 *   - parity with torch.nn.functional.interpolate (bicubic, align_corners
 *     False; scale factor (n+0.1)/M without antialias, size with antialias,
 *     and the two other combinations) on awkward grids, forward and
 *     gradient: tests/ref/posembed_ref.py is run at test time with
 *     /usr/bin/python3 and writes the oracle file into the test directory;
 *   - backward against finite differences (the transpose of the forward);
 *   - identity for an unchanged square grid, CLS copied, weights sum to 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/posembed.h"
#include "core/rng.h"
#include "testutil.h"
#include "tu_backend.h"
#include "ref/fixture.h"
#include "ops/ops.h"

/* The plan's weights applied by the CPU backend's entries (the identity as
 * NULL weights, as the model passes it). */
static void pe_forward(float *out, float *scr, const float *pos, const dv2_posembed_plan *p, int D) {
    tu_cpu()->posembed_forward(tu_cpu(), out, scr, pos, p->identity ? NULL : p->wy, p->identity ? NULL : p->wx,
                                     p->M, p->oh, p->ow, D);
}
static void pe_backward(float *dpos, float *scr, const float *dout, const dv2_posembed_plan *p, int D) {
    tu_cpu()->posembed_backward(tu_cpu(), dpos, scr, dout, p->identity ? NULL : p->wy, p->identity ? NULL : p->wx,
                                      p->M, p->oh, p->ow, D);
}

static int test_torch_parity(void) {
    const char *root = getenv("DV2_ROOT");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/ref/posembed_ref.py' posembed.bin",
             root ? root : ".");
    if (system(cmd) != 0) return 0; /* no python/torch: parity not checked */
    fx_file fx;
    if (fx_load(&fx, "posembed.bin") < 0) { CHECK(0); return 1; }
    int n = (int)fx_get(&fx, "ncases")->data[0];
    CHECK(n >= 30);
    for (int c = 0; c < n; c++) {
        char name[64], what[128];
        snprintf(name, sizeof name, "c%d_params", c);
        float *pr = fx_get(&fx, name)->data;
        int M = (int)pr[0], oh = (int)pr[1], ow = (int)pr[2], aa = pr[4] != 0, D = (int)pr[5];
        float off = pr[3];
        snprintf(name, sizeof name, "c%d_pos", c);
        const float *pos = fx_get(&fx, name)->data;
        snprintf(name, sizeof name, "c%d_out", c);
        const float *ref = fx_get(&fx, name)->data;
        snprintf(name, sizeof name, "c%d_dout", c);
        const float *dout = fx_get(&fx, name)->data;
        snprintf(name, sizeof name, "c%d_dpos", c);
        const float *dref = fx_get(&fx, name)->data;
        dv2_posembed_plan p;
        CHECK(dv2_posembed_plan_init(&p, M, oh, ow, off, aa, NULL) == 0);
        if (p.identity) { dv2_posembed_plan_free(&p); continue; }
        float *out = malloc(sizeof(float) * (1 + (size_t)oh * ow) * D);
        float *scr = malloc(sizeof(float) * (dv2_posembed_scratch_floats(&p, D) + 1));
        float *dpos = calloc((1 + (size_t)M * M) * D, sizeof(float));
        pe_forward(out, scr, pos, &p, D);
        snprintf(what, sizeof what, "forward %d->%dx%d offset %g aa %d", M, oh, ow, (double)off, aa);
        tu_close(what, out, ref, (1L + oh * ow) * D, 1e-5, 1e-5);
        pe_backward(dpos, scr, dout, &p, D);
        snprintf(what, sizeof what, "backward %d->%dx%d offset %g aa %d", M, oh, ow, (double)off, aa);
        tu_close(what, dpos, dref, (1L + M * M) * D, 1e-5, 1e-5);
        free(out); free(scr); free(dpos);
        dv2_posembed_plan_free(&p);
    }
    fx_free(&fx);
    return 1;
}

/* <dout, forward(pos)> is linear in pos: its gradient is backward(dout);
 * checked by central differences in double. */
static void test_fd(int M, int oh, int ow, float off, int aa) {
    int D = 3;
    size_t nin = (1 + (size_t)M * M) * D, nout = (1 + (size_t)oh * ow) * D;
    dv2_posembed_plan p;
    CHECK(dv2_posembed_plan_init(&p, M, oh, ow, off, aa, NULL) == 0);
    float *pos = malloc(sizeof(float) * nin), *dout = malloc(sizeof(float) * nout);
    float *out = malloc(sizeof(float) * nout), *scr = malloc(sizeof(float) * (dv2_posembed_scratch_floats(&p, D) + 1));
    float *dpos = calloc(nin, sizeof(float)), *fd = malloc(sizeof(float) * nin);
    dv2_rng r;
    dv2_rng_seed(&r, 42, (uint64_t)(M * 1000 + oh * 10 + ow));
    for (size_t i = 0; i < nin; i++) pos[i] = (float)dv2_rng_normal(&r);
    for (size_t i = 0; i < nout; i++) dout[i] = (float)dv2_rng_normal(&r);
    pe_backward(dpos, scr, dout, &p, D);
    float h = 0.5f; /* exact for a linear map up to rounding */
    for (size_t i = 0; i < nin; i++) {
        float o = pos[i];
        double lp = 0, lm = 0;
        pos[i] = o + h;
        pe_forward(out, scr, pos, &p, D);
        for (size_t k = 0; k < nout; k++) lp += (double)out[k] * dout[k];
        pos[i] = o - h;
        pe_forward(out, scr, pos, &p, D);
        for (size_t k = 0; k < nout; k++) lm += (double)out[k] * dout[k];
        pos[i] = o;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
    char what[96];
    snprintf(what, sizeof what, "backward vs FD %d->%dx%d aa %d", M, oh, ow, aa);
    tu_close(what, dpos, fd, (long)nin, 1e-4, 1e-4);
    /* accumulation */
    pe_backward(dpos, scr, dout, &p, D);
    for (size_t i = 0; i < nin; i++) dpos[i] *= 0.5f;
    tu_close("backward accumulates", dpos, fd, (long)nin, 1e-4, 1e-4);
    /* CLS copied */
    pe_forward(out, scr, pos, &p, D);
    CHECK(out[0] == pos[0] && out[D - 1] == pos[D - 1]);
    free(pos); free(dout); free(out); free(scr); free(dpos); free(fd);
    dv2_posembed_plan_free(&p);
}

static void test_weights(void) {
    float w[37 * 16];
    int cfg[][2] = {{7, 16}, {37, 16}, {16, 37}, {3, 5}, {11, 7}, {1, 4}};
    for (int c = 0; c < 6; c++)
        for (int aa = 0; aa < 2; aa++) {
            int no = cfg[c][0], ni = cfg[c][1];
            dv2_posembed_weights(w, no, ni, aa ? 0.0f : 0.1f, aa);
            for (int o = 0; o < no; o++) {
                double s = 0;
                for (int i = 0; i < ni; i++) s += w[o * ni + i];
                CHECKF(fabs(s - 1) < 1e-5, "weights %d->%d aa %d row %d sum %g", ni, no, aa, o, s);
            }
        }
    /* 16 -> 7 with the offset: output 0 samples (0.5)·16/7.1 − 0.5 */
    dv2_posembed_weights(w, 7, 16, 0.1f, 0);
    double src = 0.5 * 16 / 7.1 - 0.5, t = src - floor(src), A = -0.75;
    double x = 1 + t, c0 = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    /* tap floor(src)-1 = -1+floor: clamped to 0 with tap floor(src) when floor(src) == 0 */
    int f = (int)floor(src);
    CHECK(f == 0);
    double c1 = ((A + 2) * t - (A + 3)) * t * t + 1;
    CHECKF(fabs(w[0] - (c0 + c1)) < 1e-6, "w[0,0] %g vs %g", w[0], c0 + c1);

    dv2_posembed_plan p;
    float pos[(1 + 16) * 2], out[(1 + 16) * 2];
    for (int i = 0; i < 34; i++) pos[i] = (float)i;
    CHECK(dv2_posembed_plan_init(&p, 4, 4, 4, 0.1f, 0, NULL) == 0);
    CHECK(p.identity && dv2_posembed_scratch_floats(&p, 2) == 0);
    pe_forward(out, NULL, pos, &p, 2);
    CHECK(memcmp(out, pos, sizeof pos) == 0);
    dv2_posembed_plan_free(&p);
    CHECK(dv2_posembed_plan_init(&p, 0, 4, 4, 0.1f, 0, NULL) == DV2_EINVAL);
    CHECK(dv2_posembed_plan_init(&p, 4, 4, 4, 1.5f, 0, NULL) == DV2_EINVAL);
}

int main(void) {
    test_weights();
    test_fd(16, 7, 7, 0.1f, 0);
    test_fd(16, 7, 7, 0.0f, 1);
    test_fd(5, 3, 8, 0.1f, 0);
    test_fd(7, 11, 4, 0.0f, 1);
    int parity = test_torch_parity();
    if (!parity && tu_failures == 0) TU_SKIP("PyTorch parity not checked (/usr/bin/python3 with torch not available); %d other checks passed", tu_checks);
    return tu_finish("test_posembed");
}
