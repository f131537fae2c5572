/* loader.c — multi-threaded batch producer (train_data.h).
 *
 * Work unit: one image of one iteration, numbered j = (it − start)·B + i and
 * claimed in increasing order under the mutex.  Claiming image 0 of an
 * iteration waits for its slot (it mod depth) to be released by the consumer,
 * and draws the iteration's B indices from the sampler, so indices are drawn
 * in iteration order whatever the number of workers. */
#include "train/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image/augment.h"
#include "image/image.h"
#include "core/rng.h"
#include "train/sampler.h"
#include "format/shard.h"

enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2, SLOT_HELD = 3 };

typedef struct slot {
    dv2_batch b;
    int state;
    int done;
} slot;

struct dv2_loader {
    dv2_loader_cfg c;
    dv2_dataset *ds;
    dv2_sampler sampler;
    slot *slots;
    pthread_t *th;
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t start, next_job, next_consume;
    int stop, failed;
    dv2_error err;
    double wait_s;
};

static int size_at(const dv2_loader_cfg *c, int64_t it) {
    return c->highres_from >= 0 && it >= c->highres_from ? c->highres_size : c->global_size;
}

static int fill_image(dv2_loader *ld, slot *s, int i, dv2_recbuf *rb, dv2_image *img,
                      dv2_augment_work *w, uint8_t *gtmp, uint8_t *ltmp, dv2_error *err) {
    const dv2_loader_cfg *c = &ld->c;
    dv2_batch *b = &s->b;
    dv2_record rec;
    uint64_t idx = b->idx[i];
    int rc = dv2_dataset_get(ld->ds, idx, &rec, rb, err);
    if (rc < 0) return rc;
    rc = dv2_image_decode(img, rec.data, rec.size, err);
    if (rc < 0) return dv2_error_prefix(err, "record %llu (%s)", (unsigned long long)idx, rec.key ? rec.key : "");
    dv2_multicrop_cfg mc;
    dv2_multicrop_cfg_default(&mc);
    mc.global_size = b->Sg;
    mc.local_size = b->Sl;
    mc.n_local = b->L;
    memcpy(mc.global_scale, c->global_scale, sizeof mc.global_scale);
    memcpy(mc.local_scale, c->local_scale, sizeof mc.local_scale);
    dv2_rng r;
    dv2_rng_seed(&r, c->seed, (uint64_t)b->it * 0x9E3779B97F4A7C15ull ^ (idx * 0xD1B54A32D192ED03ull + 1));
    rc = dv2_augment_multicrop_u8(gtmp, ltmp, img, &mc, &r, w, err);
    if (rc < 0) return rc;
    size_t gs = (size_t)3 * b->Sg * b->Sg, ls = (size_t)3 * b->Sl * b->Sl;
    for (int k = 0; k < 2; k++) memcpy(b->global_px + ((size_t)k * b->B + i) * gs, gtmp + k * gs, gs);
    for (int v = 0; v < b->L; v++) memcpy(b->local_px + ((size_t)v * b->B + i) * ls, ltmp + v * ls, ls);
    return 0;
}

static void *worker(void *arg) {
    dv2_loader *ld = arg;
    const dv2_loader_cfg *c = &ld->c;
    int maxS = c->global_size > c->highres_size ? c->global_size : c->highres_size;
    uint8_t *gtmp = malloc((size_t)2 * 3 * maxS * maxS);
    uint8_t *ltmp = malloc((size_t)c->n_local * 3 * c->local_size * c->local_size + 1);
    dv2_recbuf rb;
    dv2_recbuf_init(&rb);
    dv2_image img;
    dv2_image_init(&img);
    dv2_augment_work w;
    dv2_augment_work_init(&w);
    dv2_error err = {0};
    int rc = (!gtmp || !ltmp) ? dv2_error_set(&err, DV2_ENOMEM, "loader: out of memory") : 0;
    pthread_mutex_lock(&ld->mu);
    while (!rc && !ld->stop) {
        int64_t j = ld->next_job;
        int64_t it = ld->start + j / c->batch;
        int i = (int)(j % c->batch);
        slot *s = &ld->slots[it % c->depth];
        if (i == 0) {
            /* the slot must be free: the consumer released iteration it − depth */
            if (s->state != SLOT_FREE) {
                pthread_cond_wait(&ld->cv, &ld->mu);
                continue;
            }
            s->state = SLOT_FILLING;
            s->done = 0;
            s->b.it = it;
            s->b.Sg = size_at(c, it);
            for (int k = 0; k < c->batch; k++) s->b.idx[k] = dv2_sampler_next(&ld->sampler);
        }
        ld->next_job++;
        pthread_mutex_unlock(&ld->mu);
        rc = fill_image(ld, s, i, &rb, &img, &w, gtmp, ltmp, &err);
        pthread_mutex_lock(&ld->mu);
        if (!rc && ++s->done == c->batch) {
            s->state = SLOT_READY;
            pthread_cond_broadcast(&ld->cv);
        }
    }
    if (rc && !ld->failed) {
        ld->failed = 1;
        ld->err = err;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    free(gtmp);
    free(ltmp);
    dv2_recbuf_free(&rb);
    dv2_image_free(&img);
    dv2_augment_work_free(&w);
    return NULL;
}

void dv2_loader_sampler_state(const dv2_loader *ld, int64_t it, uint64_t st[2]) {
    uint64_t pos = (uint64_t)it * (uint64_t)ld->c.batch;
    st[0] = pos / ld->sampler.count;
    st[1] = pos % ld->sampler.count;
}

int dv2_loader_create(dv2_loader **out, dv2_dataset *ds, const dv2_loader_cfg *c, int64_t start_it,
                      dv2_error *err) {
    *out = NULL;
    if (c->batch < 1 || c->workers < 1 || c->depth < 2 || c->global_size < 1 || c->local_size < 1)
        return dv2_error_set(err, DV2_EINVAL, "loader: bad configuration");
    uint64_t n = dv2_dataset_count(ds);
    if (!dv2_dataset_random_access(ds) || n == DV2_DATASET_UNKNOWN)
        return dv2_error_set(err, DV2_EUNSUPPORTED, "training data must be a dataset directory or a seekable shard");
    dv2_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return dv2_error_set(err, DV2_ENOMEM, "loader: out of memory");
    ld->c = *c;
    if (ld->c.highres_from < 0 || ld->c.highres_size <= 0) {
        ld->c.highres_from = -1;
        ld->c.highres_size = 0;
    }
    ld->ds = ds;
    ld->start = ld->next_consume = start_it;
    int rc = dv2_sampler_init(&ld->sampler, n, c->rank, c->world, c->seed, c->shuffle, err);
    if (rc) { free(ld); return rc; }
    if (ld->sampler.count < (uint64_t)c->batch) {
        dv2_sampler_free(&ld->sampler);
        free(ld);
        return dv2_error_set(err, DV2_EINVAL, "dataset of %llu records is smaller than one batch of %d per rank",
                             (unsigned long long)n, c->batch);
    }
    uint64_t st[2];
    dv2_loader_sampler_state(ld, start_it, st);
    dv2_sampler_set_state(&ld->sampler, st, NULL);
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    int maxS = ld->c.global_size > ld->c.highres_size ? ld->c.global_size : ld->c.highres_size;
    ld->slots = calloc((size_t)c->depth, sizeof *ld->slots);
    ld->th = calloc((size_t)c->workers, sizeof *ld->th);
    rc = (!ld->slots || !ld->th) ? DV2_ENOMEM : 0;
    for (int k = 0; !rc && k < c->depth; k++) {
        dv2_batch *b = &ld->slots[k].b;
        b->B = c->batch, b->L = c->n_local, b->Sl = c->local_size, b->Sg = c->global_size;
        b->global_px = malloc((size_t)2 * c->batch * 3 * maxS * maxS);
        b->local_px = malloc((size_t)c->n_local * c->batch * 3 * c->local_size * c->local_size + 1);
        b->idx = calloc((size_t)c->batch, sizeof *b->idx);
        if (!b->global_px || !b->local_px || !b->idx) rc = DV2_ENOMEM;
    }
    if (rc) {
        dv2_loader_free(ld);
        return dv2_error_set(err, DV2_ENOMEM, "loader: out of memory for %d batch slots", c->depth);
    }
    for (int k = 0; k < c->workers; k++) {
        if (pthread_create(&ld->th[k], NULL, worker, ld)) {
            dv2_loader_free(ld);
            return dv2_error_set(err, DV2_ENOMEM, "loader: cannot start worker threads");
        }
        ld->nth++;
    }
    *out = ld;
    return 0;
}

int dv2_loader_next(dv2_loader *ld, dv2_batch **out, dv2_error *err) {
    double t0 = dv2_now();
    pthread_mutex_lock(&ld->mu);
    slot *s = &ld->slots[ld->next_consume % ld->c.depth];
    while (!ld->failed && !(s->state == SLOT_READY && s->b.it == ld->next_consume))
        pthread_cond_wait(&ld->cv, &ld->mu);
    int rc = 0;
    if (ld->failed) {
        if (err) *err = ld->err;
        rc = ld->err.code ? ld->err.code : DV2_EIO;
    } else {
        s->state = SLOT_HELD;
        ld->next_consume++;
        *out = &s->b;
    }
    pthread_mutex_unlock(&ld->mu);
    ld->wait_s += dv2_now() - t0;
    return rc;
}

void dv2_loader_release(dv2_loader *ld, dv2_batch *b) {
    pthread_mutex_lock(&ld->mu);
    slot *s = &ld->slots[b->it % ld->c.depth];
    s->state = SLOT_FREE;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
}

double dv2_loader_wait_seconds(const dv2_loader *ld) { return ld->wait_s; }

void dv2_loader_free(dv2_loader *ld) {
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    for (int k = 0; k < ld->nth; k++) pthread_join(ld->th[k], NULL);
    if (ld->slots)
        for (int k = 0; k < ld->c.depth; k++) {
            free(ld->slots[k].b.global_px);
            free(ld->slots[k].b.local_px);
            free(ld->slots[k].b.idx);
        }
    free(ld->slots);
    free(ld->th);
    dv2_sampler_free(&ld->sampler);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv);
    free(ld);
}
