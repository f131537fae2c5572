/* test_sampler.c — the sharded infinite sampler (lib/train/sampler.h): ranks
 * partition each pass, every pass is a permutation of the rank's slice,
 * passes differ, the remainder is dropped evenly, state save/restore
 * continues the exact sequence, and bad arguments are refused. */
#include <stdlib.h>
#include <string.h>
#include "train/sampler.h"
#include "testutil.h"

static int cmp(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int main(void) {
    dv2_error err = {0};
    enum { N = 1003, W = 4 };
    dv2_sampler s[W];
    for (int r = 0; r < W; r++) CHECKF(dv2_sampler_init(&s[r], N, r, W, 7, 1, &err) == 0, "%s", err.msg);
    const uint64_t cnt = N / W;
    CHECK(s[0].count == cnt && s[3].count == cnt);

    /* two passes: in each, the ranks' indices are disjoint and cover the
     * permutation minus the N % W dropped positions */
    unsigned char *seen = calloc(N, 1);
    uint64_t *pass0 = malloc(cnt * sizeof *pass0), *pass1 = malloc(cnt * sizeof *pass1);
    for (int pass = 0; pass < 2; pass++) {
        memset(seen, 0, N);
        int dup = 0, range = 0;
        for (int r = 0; r < W; r++)
            for (uint64_t i = 0; i < cnt; i++) {
                uint64_t x = dv2_sampler_next(&s[r]);
                if (x >= N) { range++; continue; }
                if (seen[x]) dup++;
                seen[x] = 1;
                if (r == 0) (pass ? pass1 : pass0)[i] = x;
            }
        int covered = 0;
        for (int i = 0; i < N; i++) covered += seen[i];
        CHECK(dup == 0 && range == 0);
        CHECK(covered == (int)(cnt * W));
    }
    /* pass 1 is the same set in another order */
    int same_pos = 0;
    for (uint64_t i = 0; i < cnt; i++) same_pos += pass0[i] == pass1[i];
    CHECKF(same_pos < (int)cnt / 10, "%d of %llu at the same position", same_pos, (unsigned long long)cnt);
    uint64_t *a = malloc(cnt * sizeof *a), *b = malloc(cnt * sizeof *b);
    memcpy(a, pass0, cnt * sizeof *a);
    memcpy(b, pass1, cnt * sizeof *b);
    qsort(a, cnt, sizeof *a, cmp);
    qsort(b, cnt, sizeof *b, cmp);
    CHECK(memcmp(a, b, cnt * sizeof *a) == 0);

    /* state: save mid-pass, draw, restore into a fresh sampler, draw again */
    for (int k = 0; k < 100; k++) dv2_sampler_next(&s[1]);
    uint64_t st[2];
    dv2_sampler_get_state(&s[1], st);
    uint64_t want[600];
    for (int k = 0; k < 600; k++) want[k] = dv2_sampler_next(&s[1]); /* crosses a pass boundary */
    dv2_sampler t;
    CHECK(dv2_sampler_init(&t, N, 1, W, 7, 1, &err) == 0);
    CHECK(dv2_sampler_set_state(&t, st, &err) == 0);
    int diff = 0;
    for (int k = 0; k < 600; k++) diff += dv2_sampler_next(&t) != want[k];
    CHECK(diff == 0);
    uint64_t badst[2] = {0, cnt + 1};
    CHECK(dv2_sampler_set_state(&t, badst, &err) == DV2_ECORRUPT);
    dv2_sampler_free(&t);

    /* another seed gives another order; no shuffle gives r, r+W, ... */
    CHECK(dv2_sampler_init(&t, N, 0, W, 8, 1, &err) == 0);
    diff = 0;
    for (uint64_t i = 0; i < cnt; i++) diff += dv2_sampler_next(&t) != pass0[i];
    CHECK(diff > (int)cnt / 2);
    dv2_sampler_free(&t);
    CHECK(dv2_sampler_init(&t, N, 2, W, 8, 0, &err) == 0);
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t i = 0; i < cnt; i++) {
            uint64_t x = dv2_sampler_next(&t);
            if (x != 2 + i * W) { CHECK(x == 2 + i * W); break; }
        }
    dv2_sampler_free(&t);

    /* refusals */
    CHECK(dv2_sampler_init(&t, 3, 0, 4, 0, 1, &err) == DV2_EINVAL);
    CHECK(dv2_sampler_init(&t, 10, 4, 4, 0, 1, &err) == DV2_EINVAL);
    CHECK(dv2_sampler_init(&t, 1, 0, 1, 0, 1, &err) == 0);
    CHECK(dv2_sampler_next(&t) == 0 && dv2_sampler_next(&t) == 0);
    dv2_sampler_free(&t);

    for (int r = 0; r < W; r++) dv2_sampler_free(&s[r]);
    free(seen), free(pass0), free(pass1), free(a), free(b);
    return tu_finish("test_sampler");
}
