/* test_dist.c — the collectives of lib/core/dist.h.  Run alone it checks the
 * single-process identities; run under `mpirun -np N` (tests/t_dist_mpi.sh)
 * every rank checks sums, maxima, broadcast, all-gather and reduce-scatter
 * (those of core/dist and the backends' collective entries) against values
 * it computes itself from the rank numbers. */
#include <stdint.h>
#include <string.h>
#include "core/dist.h"
#include "ops/ops.h"
#include "testutil.h"

int main(void) {
    dv2_dist d;
    dv2_error err = {0};
    int rc = dv2_dist_init(&d, 0, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return tu_finish("test_dist");
    int W = d.world, r = d.rank;
    CHECK(r >= 0 && r < W);
    CHECK(W == dv2_dist_env_world());

    /* sums: element i of rank r holds r*1000+i; the sum is W*(W-1)/2*1000 + W*i */
    enum { N = 1001 };
    static float f[N];
    static double g[N];
    static int64_t k[N];
    for (int i = 0; i < N; i++) { f[i] = (float)(r * 1000 + i); g[i] = r * 1000.0 + i + 0.25; k[i] = (int64_t)r << 40 | i; }
    CHECK(dv2_dist_allreduce_sum_f32(&d, f, N, &err) == 0);
    CHECK(dv2_dist_allreduce_sum_f64(&d, g, N, &err) == 0);
    CHECK(dv2_dist_allreduce_sum_i64(&d, k, N, &err) == 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double want = W * (W - 1) / 2.0 * 1000.0 + (double)W * i;
        if (f[i] != (float)want) bad++;
        if (g[i] != want + 0.25 * W) bad++;
        if (k[i] != ((int64_t)(W * (W - 1) / 2) << 40) + (int64_t)W * i) bad++;
    }
    CHECKF(bad == 0, "%d wrong sums", bad);

    double m[2] = {(double)r, -(double)r};
    CHECK(dv2_dist_allreduce_max_f64(&d, m, 2, &err) == 0);
    CHECK(m[0] == W - 1 && m[1] == 0);

    char msg[32];
    snprintf(msg, sizeof msg, "from rank %d", r);
    CHECK(dv2_dist_broadcast(&d, msg, sizeof msg, W - 1, &err) == 0);
    char want[32];
    snprintf(want, sizeof want, "from rank %d", W - 1);
    CHECK(strcmp(msg, want) == 0);
    CHECK(dv2_dist_broadcast(&d, msg, sizeof msg, W, &err) == DV2_EINVAL);

    int32_t mine[2] = {r, r * r}, all[2 * 64];
    if (W <= 64) {
        CHECK(dv2_dist_allgather(&d, mine, sizeof mine, all, &err) == 0);
        for (int i = 0; i < W; i++) CHECK(all[2 * i] == i && all[2 * i + 1] == i * i);
    }
    /* reduce-scatter: chunk c of rank q holds q*10 + c*1000 + i, so rank r
     * receives sum_q (q*10 + r*1000 + i) = 10*W(W-1)/2 + W*(r*1000 + i);
     * through core/dist and through every backend's collective entries */
    enum { NC = 37 };
    if (W <= 64) {
        static float in[64 * NC], out[NC], gat[64 * NC];
        for (size_t b = 0; b < dv2_backend_count() + 1; b++) {
            dv2_backend *be = NULL;
            int orc = b ? dv2_backend_open(&be, dv2_backend_name_at(b - 1), NULL, 0, &err) : 0;
            if (orc == DV2_EUNSUPPORTED) { /* a CUDA build without a GPU */
                if (r == 0) printf("skip backend %s: %s\n", dv2_backend_name_at(b - 1), err.msg);
                continue;
            }
            if (orc) {
                CHECKF(0, "%s: %s", dv2_backend_name_at(b - 1), err.msg);
                continue;
            }
            /* device buffers for the backend's entries, host ones for core/dist */
            float *din = be ? be->alloc(be, sizeof in) : in, *dout = be ? be->alloc(be, sizeof out) : out;
            float *dgat = be ? be->alloc(be, sizeof gat) : gat;
            for (int c = 0; c < W; c++)
                for (int i = 0; i < NC; i++) in[c * NC + i] = (float)(r * 10 + c * 1000 + i);
            if (be) CHECK(be->to_device(be, din, in, sizeof in) == 0);
            CHECK((be ? be->reduce_scatter_sum(be, dout, din, NC, &d, &err)
                      : dv2_dist_reduce_scatter_sum_f32(&d, out, in, NC, &err)) == 0);
            if (be) CHECK(be->to_host(be, out, dout, sizeof out) == 0);
            int wrong = 0;
            for (int i = 0; i < NC; i++)
                if (out[i] != (float)(10.0 * W * (W - 1) / 2 + (double)W * (r * 1000 + i))) wrong++;
            CHECKF(wrong == 0, "%s: %d wrong reduce-scatter values", be ? be->name : "dist", wrong);
            if (!be) continue;
            /* all-gather of the scattered chunks: rank c's chunk in place c */
            CHECK(be->all_gather(be, dgat, dout, NC, &d, &err) == 0);
            CHECK(be->to_host(be, gat, dgat, sizeof gat) == 0);
            wrong = 0;
            for (int c = 0; c < W; c++)
                for (int i = 0; i < NC; i++)
                    if (gat[c * NC + i] != (float)(10.0 * W * (W - 1) / 2 + (double)W * (c * 1000 + i))) wrong++;
            CHECKF(wrong == 0, "%s: %d wrong all-gather values", be->name, wrong);
            for (int i = 0; i < NC; i++) in[i] = (float)(r + i);
            CHECK(be->to_device(be, din, in, sizeof(float) * NC) == 0);
            CHECK(be->allreduce_sum(be, din, NC, &d, &err) == 0);
            CHECK(be->to_host(be, in, din, sizeof(float) * NC) == 0);
            wrong = 0;
            for (int i = 0; i < NC; i++)
                if (in[i] != (float)(W * (W - 1) / 2 + W * i)) wrong++;
            CHECKF(wrong == 0, "%s: %d wrong all-reduce values", be->name, wrong);
            /* the non-blocking forms: an all-reduce and a reduce to the last
             * rank in flight together, completed by coll_wait */
            float *da = be->alloc(be, sizeof(float) * NC), *db = be->alloc(be, sizeof(float) * NC);
            for (int i = 0; i < NC; i++) in[i] = (float)(r + i), in[NC + i] = (float)(r * 100 - i);
            CHECK(be->to_device(be, da, in, sizeof(float) * NC) == 0);
            CHECK(be->to_device(be, db, in + NC, sizeof(float) * NC) == 0);
            CHECK(be->allreduce_sum_start(be, da, NC, &d, &err) == 0);
            CHECK(be->reduce_sum_start(be, db, NC, W - 1, &d, &err) == 0);
            be->coll_progress(be);
            CHECK(be->coll_wait(be, &err) == 0);
            CHECK(be->coll_wait(be, &err) == 0); /* nothing pending: a no-op */
            CHECK(be->to_host(be, in, da, sizeof(float) * NC) == 0);
            CHECK(be->to_host(be, in + NC, db, sizeof(float) * NC) == 0);
            wrong = 0;
            for (int i = 0; i < NC; i++) {
                if (in[i] != (float)(W * (W - 1) / 2 + W * i)) wrong++;
                if (r == W - 1 && in[NC + i] != (float)(100 * W * (W - 1) / 2 - W * i)) wrong++;
            }
            CHECKF(wrong == 0, "%s: %d wrong values of the started collectives", be->name, wrong);
            CHECK(be->reduce_sum_start(be, db, NC, W, &d, &err) == DV2_EINVAL);
            be->free(be, da), be->free(be, db);
            be->free(be, din), be->free(be, dout), be->free(be, dgat);
            dv2_backend_close(be);
        }
    }
    /* core/dist's non-blocking collectives: several in flight, one wait */
    {
        dv2_dist_reqs *q = NULL;
        static float a[N], b[N];
        for (int i = 0; i < N; i++) a[i] = (float)(r * 1000 + i), b[i] = (float)(r + 1);
        CHECK(dv2_dist_iallreduce_sum_f32(&d, a, N / 2, &q, &err) == 0);
        CHECK(dv2_dist_ireduce_sum_f32(&d, b, N, 0, &q, &err) == 0);
        CHECK(dv2_dist_iallreduce_sum_f32(&d, a + N / 2, N - N / 2, &q, &err) == 0);
        CHECK(dv2_dist_reqs_pending(q) == (W > 1 ? 3 : 0));
        dv2_dist_reqs_progress(q);
        CHECK(dv2_dist_reqs_wait(q, &err) == 0);
        CHECK(dv2_dist_reqs_pending(q) == 0);
        int wrong = 0;
        for (int i = 0; i < N; i++) {
            if (a[i] != (float)(W * (W - 1) / 2.0 * 1000.0 + (double)W * i)) wrong++;
            if (r == 0 && b[i] != (float)(W * (W + 1) / 2)) wrong++;
            if (r != 0 && b[i] != (float)(r + 1)) wrong++; /* a sender's buffer is only read */
        }
        CHECKF(wrong == 0, "%d wrong values of the non-blocking collectives", wrong);
        CHECK(dv2_dist_ireduce_sum_f32(&d, b, N, W, &q, &err) == DV2_EINVAL);
        CHECK(dv2_dist_reqs_wait(NULL, &err) == 0);
        dv2_dist_reqs_free(q);
    }
    CHECK(dv2_dist_barrier(&d, &err) == 0);
    CHECK(strcmp(dv2_dist_backend_name(&d), W > 1 ? "mpi" : "single") == 0);
    dv2_dist_finalize(&d);
    return tu_finish("test_dist");
}
