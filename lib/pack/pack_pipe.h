/* pack_pipe.h — internal to dv2-pack's engine: an ordered work pipeline.
 * The producer pushes items; worker threads prepare them (load, check,
 * compress) in any order; the producer's thread consumes them strictly in
 * push order.  Threads sleep on condition variables (no spinning), which
 * keeps a loaded machine usable.  Not for other modules. */
#ifndef DV2_PACK_PIPE_H
#define DV2_PACK_PIPE_H

#include "core/dv2.h"
#include "pack/pack_src.h"

typedef struct dv2_pack_pipe dv2_pack_pipe; /* opaque */

/* work(ctx, item, worker) runs on a worker; emit(ctx, item, err) runs on the
 * caller's thread, in order, and may fail.  nworkers 0 prepares inline. */
int dv2_pack_pipe_create(dv2_pack_pipe **pp, int nworkers, int depth,
                         void (*work)(void *ctx, dv2_pack_item *it, int worker),
                         int (*emit)(void *ctx, dv2_pack_item *it, dv2_error *err), void *ctx,
                         dv2_error *err);
/* Takes ownership of *it (zeroed on return).  Returns the first emit error. */
int dv2_pack_pipe_push(dv2_pack_pipe *pp, dv2_pack_item *it, dv2_error *err);
/* Emits everything pushed. */
int dv2_pack_pipe_drain(dv2_pack_pipe *pp, dv2_error *err);
/* Stops the workers and frees items not emitted. */
void dv2_pack_pipe_free(dv2_pack_pipe *pp);

#endif
