/* test_mask.c — iBOT block masking (lib/model/mask.h), the checks of the spec's
 * verification plan §19.4 and the invariants of §7.1:
 *   - max_num_patches by the left-to-right floor formula (128, 98, 666);
 *   - upperbound: the values the reference collate code gives with
 *     torch.linspace (2496, 967, 3771, computed with PyTorch), and an
 *     independent double-precision evaluation of the same sum;
 *   - B=32, N=256: exactly B of the 2B crops have a mask, ratios stratified
 *     over [0.1, 0.5], M <= upperbound, index list / weights consistent with
 *     the masks, masked crops spread over both global-crop halves, the mean
 *     masked count equal to the reference algorithm's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/mask.h"
#include "testutil.h"

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Σ_i floor(N · (lo + (hi − lo)(i+1)/n)) in double. */
static int ub_double(int n_crops, int N) {
    int n = n_crops / 2, ub = 0;
    for (int i = 0; i < n; i++) ub += (int)floor(N * (0.1 + 0.4 * (i + 1) / n) + 1e-9);
    return ub;
}

static void test_constants(void) {
    CHECK(dv2_mask_max_num_patches(224, 14) == 128);
    CHECK(dv2_mask_max_num_patches(224, 16) == 98);
    CHECK(dv2_mask_max_num_patches(518, 14) == 666);
    /* from torch.linspace(0.1, 0.5, n+1) and int(N * probs[i+1]) */
    CHECKF(dv2_mask_upperbound(64, 256, 0.5, 0.1f, 0.5f) == 2496, "%d", dv2_mask_upperbound(64, 256, 0.5, 0.1f, 0.5f));
    CHECK(dv2_mask_upperbound(24, 256, 0.5, 0.1f, 0.5f) == 967);
    CHECK(dv2_mask_upperbound(128, 196, 0.5, 0.1f, 0.5f) == 3771);
    CHECK(dv2_mask_upperbound(6, 49, 0.5, 0.1f, 0.5f) == 52);
    CHECK(dv2_mask_upperbound(2, 256, 0.5, 0.1f, 0.5f) == 128);
    int cases[][2] = {{64, 256}, {24, 256}, {128, 196}, {6, 49}, {2, 256}};
    for (int c = 0; c < 5; c++) {
        int a = dv2_mask_upperbound(cases[c][0], cases[c][1], 0.5, 0.1f, 0.5f), b = ub_double(cases[c][0], cases[c][1]);
        /* float32 ratios can round a term that is an exact integer in double down by 1 */
        CHECKF(a <= b && a >= b - cases[c][0] / 2, "upperbound %d vs double %d", a, b);
    }
    CHECK(dv2_mask_linspace_f32(0.1f, 0.5f, 33, 0) == 0.1f && dv2_mask_linspace_f32(0.1f, 0.5f, 33, 32) == 0.5f);
}

static void test_block(void) {
    dv2_mask_gen g;
    CHECK(dv2_mask_gen_init(&g, 224, 14, NULL) == 0);
    CHECK(g.h == 16 && g.w == 16);
    CHECK(dv2_mask_gen_init(&g, 10, 14, NULL) == DV2_EINVAL);
    dv2_mask_gen_init(&g, 224, 14, NULL);
    dv2_rng r;
    dv2_rng_seed(&r, 1, 0);
    uint8_t m[256];
    long short_of = 0, total = 0;
    for (int t = 0; t <= 128; t++) {
        int cnt = dv2_mask_block(m, &g, t, &r), real = 0;
        for (int j = 0; j < 256; j++) real += m[j];
        CHECKF(cnt == real && cnt <= t, "target %d: count %d, cells %d", t, cnt, real);
        short_of += t - cnt;
        total += t;
    }
    CHECKF(short_of < total / 20, "block masks fall short by %ld of %ld", short_of, total);
    CHECK(dv2_mask_block(m, &g, 0, &r) == 0);
}

static void test_batch(void) {
    int B = 32, n_crops = 2 * B, N = 256, batches = 20;
    dv2_mask_gen g;
    dv2_mask_gen_init(&g, 224, 14, NULL);
    uint8_t *masks = malloc((size_t)n_crops * N);
    int32_t *idx = malloc(sizeof(int32_t) * n_crops * N);
    float *w = malloc(sizeof(float) * n_crops * N);
    void *scratch = malloc(dv2_mask_batch_scratch_bytes(n_crops, N));
    dv2_rng r;
    dv2_rng_seed(&r, 2024, 7);
    int bucket[4] = {0}, first_half = 0, masked_total = 0;
    double ratio_sum = 0;
    for (int b = 0; b < batches; b++) {
        int M = -1, ub = -1;
        CHECK(dv2_mask_batch(masks, idx, w, &M, &ub, scratch, &g, n_crops, 0.5, 0.1f, 0.5f, &r, NULL) == 0);
        CHECK(ub == 2496);
        CHECKF(M <= ub, "M %d > upperbound %d", M, ub);
        int counts[64], nonempty = 0, m = 0;
        double wsum = 0;
        for (int row = 0; row < n_crops; row++) {
            counts[row] = 0;
            for (int j = 0; j < N; j++) {
                counts[row] += masks[row * N + j];
                if (masks[row * N + j]) {
                    CHECK(m < M && idx[m] == row * N + j);
                    m++;
                }
            }
            if (counts[row]) { nonempty++; if (row < B) first_half++; }
        }
        CHECK(m == M);
        for (int j = 0; j < M; j++) {
            int row = idx[j] / N;
            CHECK(fabsf(w[j] - 1.0f / counts[row]) < 1e-7f);
            wsum += w[j];
        }
        CHECKF(nonempty == B, "batch %d: %d non-empty masks, expected %d", b, nonempty, B);
        CHECKF(fabs(wsum - nonempty) < 1e-3, "weights sum %g", wsum);
        /* stratified: the k-th smallest count is below the k-th ratio bound */
        int sorted[64], k = 0;
        for (int row = 0; row < n_crops; row++) if (counts[row]) sorted[k++] = counts[row];
        qsort(sorted, (size_t)k, sizeof(int), cmp_int);
        for (int i = 0; i < k; i++) {
            int bound = (int)(N * dv2_mask_linspace_f32(0.1f, 0.5f, B + 1, i + 1));
            CHECKF(sorted[i] <= bound, "batch %d: %d-th smallest count %d > %d", b, i, sorted[i], bound);
            double ratio = (double)sorted[i] / N;
            ratio_sum += ratio;
            masked_total++;
            int bk = (int)((ratio - 0.1) / 0.1);
            bucket[bk < 0 ? 0 : bk > 3 ? 3 : bk]++;
        }
    }
    double mean = ratio_sum / masked_total;
    CHECKF(fabs(mean - 0.3) < 0.03, "mean mask ratio %g", mean);
    for (int k = 0; k < 4; k++)
        CHECKF(bucket[k] > masked_total / 4 * 0.6 && bucket[k] < masked_total / 4 * 1.4,
               "ratio bucket %d has %d of %d", k, bucket[k], masked_total);
    CHECKF(first_half > masked_total * 0.3 && first_half < masked_total * 0.7,
           "%d of %d masked crops in the first half", first_half, masked_total);

    /* the mean masked count: the reference algorithm run in Python (random,
     * numpy, torch.linspace) gives 2439.8 (std 6.0 per batch, 100 batches) */
    double msum = 0;
    for (int b = 0; b < 200; b++) {
        int M, ub;
        dv2_mask_batch(masks, idx, w, &M, &ub, scratch, &g, n_crops, 0.5, 0.1f, 0.5f, &r, NULL);
        msum += M;
    }
    CHECKF(fabs(msum / 200 - 2439.8) < 3.0, "mean M %g, reference 2439.8", msum / 200);

    /* deterministic for a seed */
    uint8_t *m2 = malloc((size_t)n_crops * N);
    int M1, M2, u;
    dv2_rng_seed(&r, 99, 1);
    dv2_mask_batch(masks, idx, w, &M1, &u, scratch, &g, n_crops, 0.5, 0.1f, 0.5f, &r, NULL);
    memcpy(m2, masks, (size_t)n_crops * N);
    dv2_rng_seed(&r, 99, 1);
    dv2_mask_batch(masks, idx, w, &M2, &u, scratch, &g, n_crops, 0.5, 0.1f, 0.5f, &r, NULL);
    CHECK(M1 == M2 && memcmp(m2, masks, (size_t)n_crops * N) == 0);
    /* prob 0: nothing masked */
    dv2_mask_batch(masks, idx, w, &M1, &u, scratch, &g, n_crops, 0.0, 0.1f, 0.5f, &r, NULL);
    CHECK(M1 == 0 && u == 0);
    CHECK(dv2_mask_batch(masks, idx, w, &M1, &u, scratch, &g, n_crops, 1.5, 0.1f, 0.5f, &r, NULL) == DV2_EINVAL);
    free(masks); free(idx); free(w); free(scratch); free(m2);
}

int main(void) {
    test_constants();
    test_block();
    test_batch();
    return tu_finish("test_mask");
}
