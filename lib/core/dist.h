/* dist.h — the collectives dv2 needs across processes, behind one small
 * interface: rank and world size, in-place all-reduce (sum, max) of float,
 * double and int64 buffers, broadcast, barrier and all-gather.
 *
 * Backends: MPI when the build has it (DV2_HAVE_MPI) and the process was
 * launched by mpirun or srun with more than one task (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or SLURM_NTASKS > 1 in the environment); otherwise a single-process
 * implementation where every collective is the identity.  A GPU backend
 * (NCCL) can take the same entry points later: callers only see dv2_dist.
 *
 * All collectives must be called by every rank in the same order with the
 * same counts.  Buffers of any size are accepted (split into chunks below
 * INT_MAX elements for MPI).  Functions return 0 or a negative DV2_E* status. */
#ifndef DV2_DIST_H
#define DV2_DIST_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DV2_DIST_SINGLE = 0, DV2_DIST_MPI = 1 };

typedef struct dv2_dist {
    int rank;       /* 0 .. world-1 */
    int world;      /* number of processes, 1 when single */
    int backend;    /* DV2_DIST_SINGLE or DV2_DIST_MPI */
    int owns_init;  /* 1 if dv2_dist_init initialized MPI (and finalize ends it) */
} dv2_dist;

/* Number of tasks the launcher announced in the environment (1 if none). */
int dv2_dist_env_world(void);

/* Sets up d: MPI if built in and the environment announces > 1 task, else
 * single.  force_single = 1 never touches MPI. */
int dv2_dist_init(dv2_dist *d, int force_single, dv2_error *err);
/* A single-process dv2_dist (rank 0 of 1); never fails. */
void dv2_dist_init_single(dv2_dist *d);
void dv2_dist_finalize(dv2_dist *d);

/* In-place sums across ranks: buf[i] = sum over ranks of buf[i]. */
int dv2_dist_allreduce_sum_f32(const dv2_dist *d, float *buf, size_t n, dv2_error *err);
int dv2_dist_allreduce_sum_f64(const dv2_dist *d, double *buf, size_t n, dv2_error *err);
int dv2_dist_allreduce_sum_i64(const dv2_dist *d, int64_t *buf, size_t n, dv2_error *err);
/* In-place maxima across ranks. */
int dv2_dist_allreduce_max_f64(const dv2_dist *d, double *buf, size_t n, dv2_error *err);
/* Copies root's buf[0..bytes) to every rank. */
int dv2_dist_broadcast(const dv2_dist *d, void *buf, size_t bytes, int root, dv2_error *err);
int dv2_dist_barrier(const dv2_dist *d, dv2_error *err);
/* recv (world*bytes) receives every rank's send block in rank order. */
int dv2_dist_allgather(const dv2_dist *d, const void *send, size_t bytes, void *recv,
                       dv2_error *err);

/* in (world*n floats, rank-major chunks of n) → out (n): rank r receives the
 * sum over ranks of chunk r (the reduce-scatter of sharded optimizers). */
int dv2_dist_reduce_scatter_sum_f32(const dv2_dist *d, float *out, const float *in, size_t n,
                                    dv2_error *err);

/* Non-blocking collectives (the gradient reduction overlapped with the
 * backward).  Each start appends its requests to *reqs (created on first
 * use) and returns at once; the buffer must not be read or written until
 * dv2_dist_reqs_wait.  Every rank starts the same collectives in the same
 * order.  With one process they complete at once.
 *   iallreduce: buf (n) ← the sum over ranks, in place;
 *   ireduce: root's buf (n) ← the sum over ranks, in place; the other
 *   ranks' buf is only read. */
typedef struct dv2_dist_reqs dv2_dist_reqs;
int dv2_dist_iallreduce_sum_f32(const dv2_dist *d, float *buf, size_t n, dv2_dist_reqs **reqs,
                                dv2_error *err);
int dv2_dist_ireduce_sum_f32(const dv2_dist *d, float *buf, size_t n, int root, dv2_dist_reqs **reqs,
                             dv2_error *err);
/* Lets the started collectives advance (MPI progresses them inside its
 * calls); never blocks.  Accepts NULL. */
void dv2_dist_reqs_progress(dv2_dist_reqs *reqs);
/* Waits for every started collective (MPI_Waitall); reqs can be reused
 * after.  Returns 0 or DV2_EIO when one of them failed. */
int dv2_dist_reqs_wait(dv2_dist_reqs *reqs, dv2_error *err);
/* Requests started and not waited for, 0 for NULL (one per collective, or
 * one per piece of 2^28 elements of a longer one). */
int dv2_dist_reqs_pending(const dv2_dist_reqs *reqs);
/* Frees the set without waiting (after a failure, the other ranks may
 * never complete what is pending). */
void dv2_dist_reqs_free(dv2_dist_reqs *reqs);

/* "mpi" or "single". */
const char *dv2_dist_backend_name(const dv2_dist *d);

/* Before a collective every rank must know that all ranks got there
 * without error: returns 0 if every rank passed rc >= 0, else -1, with err
 * set ("another process failed") on a rank whose own rc was fine. */
int dv2_dist_agree(const dv2_dist *d, int rc, dv2_error *err);

#ifdef __cplusplus
}
#endif
#endif
