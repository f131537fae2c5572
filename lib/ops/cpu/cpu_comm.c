/* cpu_comm.c — the collectives of the CPU backend: its device buffers are
 * host memory, so they go straight to the process collectives (core/dist:
 * MPI, or the single-process identities). */
#include "ops/cpu/cpu.h"

#include "core/dist.h"
#include "core/dv2.h"

int dv2_cpu_allreduce_sum(float *buf, size_t n, const dv2_dist *comm, dv2_error *err) {
    return dv2_dist_allreduce_sum_f32(comm, buf, n, err);
}

int dv2_cpu_reduce_scatter_sum(float *out, const float *in, size_t n, const dv2_dist *comm,
                               dv2_error *err) {
    return dv2_dist_reduce_scatter_sum_f32(comm, out, in, n, err);
}

int dv2_cpu_all_gather(float *out, const float *in, size_t n, const dv2_dist *comm, dv2_error *err) {
    return dv2_dist_allgather(comm, in, n * sizeof *in, out, err);
}
