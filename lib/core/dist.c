/* dist.c — collectives over MPI, or the identity for one process (dist.h).
 *
 * MPI is initialized only when the launcher announced more than one task, so
 * a plain `dv2-train ...` never loads the MPI runtime's machinery (and works
 * where no daemon is reachable).  Large buffers are split into chunks whose
 * element counts fit MPI's int arguments. */
#include "core/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DV2_HAVE_MPI
#include <mpi.h>
#endif

#define DIST_CHUNK ((size_t)1 << 28) /* elements per MPI call, < INT_MAX */

static int env_count(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > INT_MAX) return 0;
    return (int)v;
}

int dv2_dist_env_world(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int v = env_count(vars[i]);
        if (v > 0) return v;
    }
    return 1;
}

void dv2_dist_init_single(dv2_dist *d) {
    d->rank = 0;
    d->world = 1;
    d->backend = DV2_DIST_SINGLE;
    d->owns_init = 0;
}

const char *dv2_dist_backend_name(const dv2_dist *d) {
    return d->backend == DV2_DIST_MPI ? "mpi" : "single";
}

#ifdef DV2_HAVE_MPI
static int mpi_fail(dv2_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return dv2_error_set(err, DV2_EIO, "dist: %s failed: %s", what, msg);
}
#endif

int dv2_dist_init(dv2_dist *d, int force_single, dv2_error *err) {
    dv2_dist_init_single(d);
    if (force_single || dv2_dist_env_world() <= 1) return DV2_OK;
#ifdef DV2_HAVE_MPI
    int inited = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Init_thread");
        d->owns_init = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = 0, world = 1;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &rank)) != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_rank");
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &world)) != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_size");
    d->rank = rank;
    d->world = world;
    d->backend = DV2_DIST_MPI;
    return DV2_OK;
#else
    return dv2_error_set(err, DV2_EUNSUPPORTED,
                         "dist: launched as %d tasks but this build has no MPI (rebuild with MPI=1)",
                         dv2_dist_env_world());
#endif
}

void dv2_dist_finalize(dv2_dist *d) {
    if (!d) return;
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI && d->owns_init) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
#endif
    dv2_dist_init_single(d);
}

#ifdef DV2_HAVE_MPI
static int allreduce(const dv2_dist *d, void *buf, size_t n, size_t esize, MPI_Datatype t, MPI_Op op,
                     dv2_error *err) {
    char *p = buf;
    for (size_t off = 0; off < n; off += DIST_CHUNK) {
        size_t c = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + off * esize, (int)c, t, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce");
    }
    (void)d;
    return DV2_OK;
}
#endif

int dv2_dist_allreduce_sum_f32(const dv2_dist *d, float *buf, size_t n, dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return allreduce(d, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return DV2_OK;
}

int dv2_dist_allreduce_sum_f64(const dv2_dist *d, double *buf, size_t n, dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return allreduce(d, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return DV2_OK;
}

int dv2_dist_allreduce_sum_i64(const dv2_dist *d, int64_t *buf, size_t n, dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return allreduce(d, buf, n, sizeof *buf, MPI_INT64_T, MPI_SUM, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return DV2_OK;
}

int dv2_dist_allreduce_max_f64(const dv2_dist *d, double *buf, size_t n, dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return allreduce(d, buf, n, sizeof *buf, MPI_DOUBLE, MPI_MAX, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return DV2_OK;
}

int dv2_dist_broadcast(const dv2_dist *d, void *buf, size_t bytes, int root, dv2_error *err) {
    if (root < 0 || root >= d->world)
        return dv2_error_set(err, DV2_EINVAL, "dist: broadcast root %d outside 0..%d", root, d->world - 1);
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) {
        char *p = buf;
        for (size_t off = 0; off < bytes; off += DIST_CHUNK) {
            size_t c = bytes - off < DIST_CHUNK ? bytes - off : DIST_CHUNK;
            int rc = MPI_Bcast(p + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
        }
        return DV2_OK;
    }
#endif
    (void)buf, (void)bytes;
    return DV2_OK;
}

int dv2_dist_barrier(const dv2_dist *d, dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) {
        int rc = MPI_Barrier(MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Barrier");
        return DV2_OK;
    }
#endif
    (void)d, (void)err;
    return DV2_OK;
}

int dv2_dist_allgather(const dv2_dist *d, const void *send, size_t bytes, void *recv,
                       dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) {
        if (bytes > (size_t)INT_MAX)
            return dv2_error_set(err, DV2_EINVAL, "dist: allgather block of %zu bytes too large", bytes);
        int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allgather");
        return DV2_OK;
    }
#endif
    (void)err;
    if (bytes && send != recv) memmove(recv, send, bytes);
    return DV2_OK;
}

int dv2_dist_reduce_scatter_sum_f32(const dv2_dist *d, float *out, const float *in, size_t n,
                                    dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) {
        if (n > (size_t)INT_MAX)
            return dv2_error_set(err, DV2_EINVAL, "dist: reduce-scatter block of %zu floats too large", n);
        int rc = MPI_Reduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Reduce_scatter_block");
        return DV2_OK;
    }
#endif
    (void)err;
    if (n && out != in) memmove(out, in, n * sizeof *out);
    return DV2_OK;
}

/* ---- non-blocking ---------------------------------------------------------- */

struct dv2_dist_reqs {
    int n, cap;
#ifdef DV2_HAVE_MPI
    MPI_Request *r;
#endif
};

#ifdef DV2_HAVE_MPI
static MPI_Request *reqs_slot(dv2_dist_reqs **reqs, dv2_error *err) {
    dv2_dist_reqs *q = *reqs;
    if (!q && !(q = *reqs = calloc(1, sizeof *q))) {
        dv2_error_set(err, DV2_ENOMEM, "dist: out of memory for requests");
        return NULL;
    }
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 64;
        MPI_Request *r = realloc(q->r, sizeof *r * (size_t)cap);
        if (!r) {
            dv2_error_set(err, DV2_ENOMEM, "dist: out of memory for requests");
            return NULL;
        }
        q->r = r, q->cap = cap;
    }
    return &q->r[q->n];
}

/* root < 0: all-reduce; else a reduce to root.  In pieces of DIST_CHUNK. */
static int istart(const dv2_dist *d, float *buf, size_t n, int root, dv2_dist_reqs **reqs, dv2_error *err) {
    for (size_t off = 0; off < n; off += DIST_CHUNK) {
        int c = (int)(n - off < DIST_CHUNK ? n - off : DIST_CHUNK), rc;
        MPI_Request *r = reqs_slot(reqs, err);
        if (!r) return DV2_ENOMEM;
        if (root < 0) {
            rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r);
            if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Iallreduce");
        } else {
            const void *send = d->rank == root ? MPI_IN_PLACE : (const void *)(buf + off);
            rc = MPI_Ireduce(send, buf + off, c, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD, r);
            if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Ireduce");
        }
        (*reqs)->n++;
    }
    return DV2_OK;
}
#endif

int dv2_dist_iallreduce_sum_f32(const dv2_dist *d, float *buf, size_t n, dv2_dist_reqs **reqs,
                                dv2_error *err) {
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return istart(d, buf, n, -1, reqs, err);
#endif
    (void)d, (void)buf, (void)n, (void)reqs, (void)err;
    return DV2_OK;
}

int dv2_dist_ireduce_sum_f32(const dv2_dist *d, float *buf, size_t n, int root, dv2_dist_reqs **reqs,
                             dv2_error *err) {
    if (root < 0 || root >= d->world)
        return dv2_error_set(err, DV2_EINVAL, "dist: reduce root %d outside 0..%d", root, d->world - 1);
#ifdef DV2_HAVE_MPI
    if (d->backend == DV2_DIST_MPI) return istart(d, buf, n, root, reqs, err);
#endif
    (void)buf, (void)n, (void)reqs;
    return DV2_OK;
}

void dv2_dist_reqs_progress(dv2_dist_reqs *reqs) {
#ifdef DV2_HAVE_MPI
    if (reqs && reqs->n) {
        int done = 0;
        MPI_Testall(reqs->n, reqs->r, &done, MPI_STATUSES_IGNORE);
    }
#endif
    (void)reqs;
}

int dv2_dist_reqs_wait(dv2_dist_reqs *reqs, dv2_error *err) {
    if (!reqs || !reqs->n) return DV2_OK;
#ifdef DV2_HAVE_MPI
    int rc = MPI_Waitall(reqs->n, reqs->r, MPI_STATUSES_IGNORE);
    reqs->n = 0;
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Waitall");
#endif
    (void)err;
    return DV2_OK;
}

int dv2_dist_reqs_pending(const dv2_dist_reqs *reqs) { return reqs ? reqs->n : 0; }

void dv2_dist_reqs_free(dv2_dist_reqs *reqs) {
    if (!reqs) return;
#ifdef DV2_HAVE_MPI
    free(reqs->r); /* requests still pending are left to MPI: only an error path gets here with any */
#endif
    free(reqs);
}

int dv2_dist_agree(const dv2_dist *d, int rc, dv2_error *err) {
    int64_t failed = rc < 0;
    if (d->world > 1 && dv2_dist_allreduce_sum_i64(d, &failed, 1, NULL) < 0) failed = 1;
    if (failed && rc == 0) dv2_error_set(err, DV2_EIO, "another process failed");
    return failed ? -1 : 0;
}
