/* pack_pipe.c — the ordered pipeline of dv2-pack: a ring of item slots,
 * worker threads taking the next unprepared slot, and the producer emitting
 * finished slots from the head in push order.  One mutex guards the
 * counters; items themselves are touched by one thread at a time (the
 * worker that took the slot, then the producer once it is marked done). */
#include "pack/pack_pipe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct dv2_pack_pipe {
    dv2_pack_item *ring;
    unsigned char *done;
    int cap;
    unsigned long long head, tail, next; /* emit, push, work counters */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int stop;
    pthread_t *th;
    int nth, started;
    void (*work)(void *, dv2_pack_item *, int);
    int (*emit)(void *, dv2_pack_item *, dv2_error *);
    void *ctx;
};

typedef struct worker_arg { dv2_pack_pipe *pp; int id; } worker_arg;

static void *worker(void *arg) {
    worker_arg *wa = arg;
    dv2_pack_pipe *pp = wa->pp;
    int id = wa->id;
    free(wa);
    pthread_mutex_lock(&pp->mu);
    for (;;) {
        if (pp->stop) break;
        if (pp->next < pp->tail) {
            unsigned long long i = pp->next++;
            pthread_mutex_unlock(&pp->mu);
            pp->work(pp->ctx, &pp->ring[i % (unsigned)pp->cap], id);
            pthread_mutex_lock(&pp->mu);
            pp->done[i % (unsigned)pp->cap] = 1;
            pthread_cond_broadcast(&pp->done_cv);
            continue;
        }
        pthread_cond_wait(&pp->work_cv, &pp->mu);
    }
    pthread_mutex_unlock(&pp->mu);
    return NULL;
}

int dv2_pack_pipe_create(dv2_pack_pipe **out, int nworkers, int depth,
                         void (*work)(void *, dv2_pack_item *, int),
                         int (*emit)(void *, dv2_pack_item *, dv2_error *), void *ctx,
                         dv2_error *err) {
    *out = NULL;
    dv2_pack_pipe *pp = calloc(1, sizeof *pp);
    if (!pp) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    pp->cap = depth > 0 ? depth : 1;
    pp->ring = calloc((size_t)pp->cap, sizeof *pp->ring);
    pp->done = calloc((size_t)pp->cap, 1);
    pp->th = calloc(nworkers > 0 ? (size_t)nworkers : 1, sizeof *pp->th);
    pp->work = work;
    pp->emit = emit;
    pp->ctx = ctx;
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->work_cv, NULL);
    pthread_cond_init(&pp->done_cv, NULL);
    pp->started = 1;
    if (!pp->ring || !pp->done || !pp->th) {
        dv2_pack_pipe_free(pp);
        return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    }
    for (int i = 0; i < nworkers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) { wa->pp = pp; wa->id = i; }
        if (!wa || pthread_create(&pp->th[i], NULL, worker, wa) != 0) {
            free(wa);
            dv2_pack_pipe_free(pp);
            return dv2_error_set(err, DV2_ENOMEM, "cannot start worker threads");
        }
        pp->nth++;
    }
    *out = pp;
    return 0;
}

/* Emits finished items at the head, in order.  mode 0: only those already
 * done; 1: wait until a slot is free; 2: wait until everything is emitted.
 * Called with the mutex held. */
static int emit_ready(dv2_pack_pipe *pp, int mode, dv2_error *err) {
    while (pp->head < pp->tail) {
        unsigned s = (unsigned)(pp->head % (unsigned)pp->cap);
        if (!pp->done[s]) {
            if (mode == 0 || (mode == 1 && pp->tail - pp->head < (unsigned)pp->cap)) return 0;
            pthread_cond_wait(&pp->done_cv, &pp->mu);
            continue;
        }
        pthread_mutex_unlock(&pp->mu);
        int rc = pp->emit(pp->ctx, &pp->ring[s], err);
        dv2_pack_item_free(&pp->ring[s]);
        pthread_mutex_lock(&pp->mu);
        pp->done[s] = 0;
        pp->head++;
        if (rc < 0) return rc;
    }
    return 0;
}

int dv2_pack_pipe_push(dv2_pack_pipe *pp, dv2_pack_item *it, dv2_error *err) {
    if (pp->nth == 0) { /* inline */
        pp->work(pp->ctx, it, 0);
        int rc = pp->emit(pp->ctx, it, err);
        dv2_pack_item_free(it);
        return rc;
    }
    pthread_mutex_lock(&pp->mu);
    int rc = 0;
    if (pp->tail - pp->head == (unsigned)pp->cap) rc = emit_ready(pp, 1, err);
    if (rc == 0) {
        unsigned s = (unsigned)(pp->tail % (unsigned)pp->cap);
        pp->ring[s] = *it;
        memset(it, 0, sizeof *it);
        pp->done[s] = 0;
        pp->tail++;
        pthread_cond_signal(&pp->work_cv);
        rc = emit_ready(pp, 0, err);
    }
    pthread_mutex_unlock(&pp->mu);
    if (rc < 0) dv2_pack_item_free(it);
    return rc;
}

int dv2_pack_pipe_drain(dv2_pack_pipe *pp, dv2_error *err) {
    if (pp->nth == 0) return 0;
    pthread_mutex_lock(&pp->mu);
    int rc = emit_ready(pp, 2, err);
    pthread_mutex_unlock(&pp->mu);
    return rc;
}

void dv2_pack_pipe_free(dv2_pack_pipe *pp) {
    if (!pp) return;
    pthread_mutex_lock(&pp->mu);
    pp->stop = 1;
    pthread_cond_broadcast(&pp->work_cv);
    pthread_mutex_unlock(&pp->mu);
    for (int i = 0; i < pp->nth; i++) pthread_join(pp->th[i], NULL);
    /* slots from head to tail hold items not emitted (prepared or not) */
    for (unsigned long long i = pp->head; pp->ring && i < pp->tail; i++)
        dv2_pack_item_free(&pp->ring[i % (unsigned)pp->cap]);
    pthread_mutex_destroy(&pp->mu);
    pthread_cond_destroy(&pp->work_cv);
    pthread_cond_destroy(&pp->done_cv);
    free(pp->ring);
    free(pp->done);
    free(pp->th);
    free(pp);
}
