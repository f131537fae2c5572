/* train.c — the training loop (train.h): set-up, resume, iterations,
 * metrics, checkpoints, export, graceful stop. */
#include "train/train.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/afile.h"
#include "core/lock.h"
#include "train/ckpt.h"
#include "format/dataset.h"
#include "ops/ops.h"
#include "train/runlog.h"
#include "train/schedule.h"
#include "train/loader.h"
#include "train/train_model.h"
#include "train/teacher.h"
#include "train/train_step.h"

typedef struct run {
    const dv2_config *c;
    const dv2_train_opts *o;
    const dv2_dist *dist;
    dv2_train_model m;
    dv2_train_step *st;
    dv2_dataset *ds;
    dv2_loader *ld;
    dv2_runlog *log;
    dv2_schedules sched;
    int64_t it, total;
    int bad_steps;
    char *config_text;
    uint64_t teacher_digest; /* distillation */
} run;

static void notice(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(const run *r, const char *fmt, ...) {
    if (r->dist->rank != 0 || !r->o->on_log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->o->on_log(r->o->log_ctx, line);
}

static char *config_text(const dv2_config *c) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    dv2_config_write(c, f);
    fclose(f);
    return buf;
}

/* The model a run gives, into dir: the teacher backbone, or in distillation
 * the student's EMA (the final model) and, with raw, the raw student beside it. */
static int export_models(run *r, const char *dir, int raw, dv2_error *err) {
    char path[4200];
    int rc;
    if (r->m.distill) {
        snprintf(path, sizeof path, "%s/student_ema.safetensors", dir);
        if ((rc = dv2_train_model_export_student(&r->m, 1, "dv2-distill student EMA", path, err)) || !raw) return rc;
        snprintf(path, sizeof path, "%s/student.safetensors", dir);
        return dv2_train_model_export_student(&r->m, 0, "dv2-distill student", path, err);
    }
    snprintf(path, sizeof path, "%s/teacher.safetensors", dir);
    return dv2_train_model_export_teacher(&r->m, path, err);
}

static int write_checkpoint(run *r, dv2_error *err) {
    /* a sharded optimizer state is gathered by every rank; rank 0 writes */
    if (r->dist->rank != 0 && !r->m.sharded) return 0;
    dv2_safetensors_entry *e = NULL;
    float *host = NULL;
    size_t n = 0;
    int rc = dv2_train_model_entries(&r->m, &e, &n, &host, err);
    if (rc || r->dist->rank != 0) return rc;
    char v[9][32];
    uint64_t st[2];
    dv2_loader_sampler_state(r->ld, r->it, st);
    snprintf(v[0], 32, "%" PRIu64, (uint64_t)r->m.adam_t);
    snprintf(v[1], 32, "%lld", (long long)r->c->train.seed);
    snprintf(v[2], 32, "%d", r->dist->world);
    snprintf(v[3], 32, "%d", r->c->train.batch_size_per_gpu);
    snprintf(v[4], 32, "%d", r->bad_steps);
    snprintf(v[5], 32, "%" PRIu64, st[0]);
    snprintf(v[6], 32, "%" PRIu64, st[1]);
    snprintf(v[8], 32, "%" PRIu64, r->teacher_digest);
    const char *mk[] = {"adam_t", "seed", "world", "batch_size_per_gpu", "bad_steps", "sampler_pass",
                        "sampler_offset", "config", "teacher_digest"};
    const char *mv[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], r->config_text ? r->config_text : "", v[8]};
    rc = dv2_ckpt_write(r->o->run_dir, r->it, e, n, mk, mv, r->m.distill ? 9 : 8, r->c->train.keep_checkpoints,
                        err);
    dv2_train_model_entries_free(e, host);
    if (rc) return rc;
    return export_models(r, r->o->run_dir, 1, err);
}

/* evaluation.eval_period_iterations: the official trainer saves the teacher
 * every N iterations under eval/training_ITER (ITER the 0-based index of the
 * iteration just done), for evaluations running beside the training; the
 * same here as RUN/eval/training_ITER/teacher.safetensors (the student EMA
 * in distillation), on rank 0. */
static int export_eval(run *r, dv2_error *err) {
    if (r->dist->rank != 0) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/eval/training_%lld", r->o->run_dir, (long long)(r->it - 1));
    int rc = dv2_mkdir_p(dir, err);
    return rc ? rc : export_models(r, dir, 0, err);
}

static int resume(run *r, dv2_error *err) {
    dv2_safetensors_file *f = NULL;
    int64_t step;
    int skipped = 0;
    int rc = dv2_ckpt_open_latest(&f, r->o->run_dir, &step, &skipped, err);
    if (rc) return rc;
    if (skipped) notice(r, "skipped %d damaged checkpoint%s", skipped, skipped > 1 ? "s" : "");
    uint64_t adam_t, world, bs, bad, seed;
    if ((rc = dv2_ckpt_meta_u64(f, "adam_t", &adam_t, err)) || (rc = dv2_ckpt_meta_u64(f, "world", &world, err)) ||
        (rc = dv2_ckpt_meta_u64(f, "batch_size_per_gpu", &bs, err)) ||
        (rc = dv2_ckpt_meta_u64(f, "bad_steps", &bad, err)) || (rc = dv2_ckpt_meta_u64(f, "seed", &seed, err)))
        goto out;
    /* Another world size is fine when the global batch is the same: the
     * checkpoint holds the whole state (sharded moments are gathered on
     * save and cut to each rank's chunk on load), the schedules depend on
     * the global batch only and the sampler position follows the step. */
    if (world * bs != (uint64_t)r->dist->world * (uint64_t)r->c->train.batch_size_per_gpu ||
        seed != (uint64_t)r->c->train.seed) {
        rc = dv2_error_set(err, DV2_EINVAL, "%s: checkpoint of %" PRIu64 " ranks x %" PRIu64 " images, seed %" PRIu64
                           "; this run has %d x %d, seed %lld (resume needs the same seed and global batch)",
                           dv2_safetensors_path(f), world, bs, seed, r->dist->world,
                           r->c->train.batch_size_per_gpu, (long long)r->c->train.seed);
        goto out;
    }
    if (world != (uint64_t)r->dist->world)
        notice(r, "resuming %" PRIu64 " ranks x %" PRIu64 " images as %d x %d (the same global batch)", world, bs,
               r->dist->world, r->c->train.batch_size_per_gpu);
    if (r->m.distill) {
        uint64_t td;
        if ((rc = dv2_ckpt_meta_u64(f, "teacher_digest", &td, err))) goto out;
        if (td != r->teacher_digest) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: the teacher changed since this checkpoint (digest %016" PRIx64
                               ", now %016" PRIx64 ")", dv2_safetensors_path(f), td, r->teacher_digest);
            goto out;
        }
    }
    if ((rc = dv2_train_model_restore(&r->m, f, err))) {
        dv2_error_prefix(err, "%s", dv2_safetensors_path(f));
        goto out;
    }
    r->m.adam_t = (int64_t)adam_t;
    r->bad_steps = (int)bad;
    r->it = step;
    notice(r, "resuming from %s (iteration %lld)", dv2_safetensors_path(f), (long long)step);
out:
    dv2_safetensors_close(f);
    return rc;
}

/* Rank 0's student and EMA target to every rank.  The parameters live on
 * the backend's device, so the broadcast (core/dist, host memory) goes
 * through a host copy: rank 0 reads its values back, every other rank
 * uploads what it received.  Every rank runs every broadcast, even after a
 * failed copy (returned at the end). */
static int broadcast_params(run *r, dv2_error *err) {
    if (r->dist->world == 1) return 0;
    const dv2_backend *be = r->m.be;
    size_t mx = 1;
    for (int k = 0; k < r->m.n_mod; k++) {
        if (r->m.s_mod[k]->numel > mx) mx = r->m.s_mod[k]->numel;
        if (r->m.ema_mod[k]->numel > mx) mx = r->m.ema_mod[k]->numel;
    }
    float *h = dv2_malloc_array(mx, sizeof *h);
    int bad = h ? 0 : DV2_ENOMEM;
    if (dv2_dist_agree(r->dist, bad, err)) { /* every rank or none broadcasts */
        free(h);
        return bad ? dv2_error_set(err, bad, "train: out of memory for the parameter broadcast") : DV2_EIO;
    }
    int rc = 0;
    for (int k = 0; !rc && k < r->m.n_mod; k++) {
        dv2_params *net[2] = {r->m.s_mod[k], r->m.ema_mod[k]};
        for (int w = 0; !rc && w < 2; w++) {
            size_t nb = net[w]->numel * sizeof(float);
            if (r->dist->rank == 0 && be->to_host(be, h, net[w]->data, nb)) bad = DV2_EIO;
            rc = dv2_dist_broadcast(r->dist, h, nb, 0, err);
            if (!rc && r->dist->rank != 0 && be->to_device(be, net[w]->data, h, nb)) bad = DV2_EIO;
        }
    }
    free(h);
    if (rc) return rc;
    for (int k = 0; !bad && k < r->m.n_mod; k++) /* rank 0's weights arrived as f32 */
        if (dv2_params_sync16(r->m.s_mod[k], err) || dv2_params_sync16(r->m.ema_mod[k], err)) bad = DV2_EIO;
    /* a failed copy on one rank stops every rank (none trains on other values) */
    if (dv2_dist_agree(r->dist, bad, err))
        return bad ? dv2_error_set(err, bad, "train: backend memory operation failed in the parameter broadcast")
                   : DV2_EIO;
    return 0;
}

static const char *plot_keys[] = {"loss", "dino_local", "dino_global", "ibot", "koleo", "tgt_entropy",
                                  "tgt_mean_entropy"};
#define N_PLOT_KEYS ((int)(sizeof plot_keys / sizeof plot_keys[0]))

static int log_step(run *r, const dv2_train_step_stats *s, const dv2_sched_values *v, double step_s,
                    double wait_s, dv2_error *err) {
    if (r->dist->rank != 0) return 0;
    const double imgs = (double)r->c->train.batch_size_per_gpu * r->dist->world;
    const char *k[] = {"loss", "dino_local", "dino_global", "ibot", "koleo", "lr", "last_layer_lr", "wd",
                       "momentum", "teacher_temp", "grad_norm_backbone", "grad_norm_dino_head",
                       "grad_norm_ibot_head", "n_masked", "images_per_s", "step_s", "data_wait_s", "finite", "global_crops_size"};
    double val[] = {s->total, s->dino_local, s->dino_global, s->ibot, s->koleo, v->lr, v->last_layer_lr, v->wd,
                    v->momentum, v->teacher_temp, s->grad_norm[0], s->grad_norm[1],
                    r->m.n_mod > 2 ? s->grad_norm[2] : 0.0, s->n_masked, step_s > 0 ? imgs / step_s : 0,
                    step_s, wait_s, s->finite, s->global_size};
    enum { NB = sizeof val / sizeof val[0], NA = NB + DV2_COLLAPSE_NKEYS };
    const char *ka[NA]; /* then the collapse diagnostics (collapse.h) */
    double va[NA];
    memcpy(ka, k, sizeof k), memcpy(va, val, sizeof val);
    dv2_collapse_keys(&s->collapse, ka + NB, va + NB);
    int rc = dv2_runlog_append(r->log, r->it, ka, va, NA, err);
    if (rc) return rc;
    int period = r->c->train.log_period;
    if (r->it % period == 0 || r->it + 1 == r->total) {
        notice(r, "it %lld/%lld loss %.4f (dino %.4f+%.4f ibot %.4f koleo %.4f) lr %.3g wd %.3g mom %.5f "
                  "temp %.4f gnorm %.3g %.1f img/s",
               (long long)r->it, (long long)r->total, s->total, s->dino_local, s->dino_global, s->ibot, s->koleo,
               v->lr, v->wd, v->momentum, v->teacher_temp, s->grad_norm[0], step_s > 0 ? imgs / step_s : 0);
    }
    if (r->it % (10 * period) == 0 || r->it + 1 == r->total) {
        char path[4096], title[256];
        snprintf(path, sizeof path, "%s/loss.svg", r->o->run_dir);
        snprintf(title, sizeof title, "%s %s: loss terms", r->o->teacher ? "dv2-distill" : "dv2-train", r->o->run_dir);
        rc = dv2_runlog_plot(r->log, path, title, plot_keys, N_PLOT_KEYS, err);
    }
    return rc;
}

/* The training data: one dataset, or several separated by commas, read as one. */
static int open_data(dv2_dataset **ds, const char *list, dv2_error *err) {
    char *copy = strdup(list);
    const char *paths[256];
    int n = 0;
    if (!copy) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    for (char *save = NULL, *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n == 256) {
            free(copy);
            return dv2_error_set(err, DV2_EINVAL, "train.dataset_path: more than 256 datasets");
        }
        paths[n++] = p;
    }
    int rc = n ? dv2_dataset_open_list(ds, paths, n, err)
               : dv2_error_set(err, DV2_EINVAL, "train.dataset_path: no dataset");
    free(copy);
    return rc;
}

int dv2_train_run(const dv2_config *c, const dv2_train_opts *o, const dv2_dist *dist,
                  dv2_train_result *res, dv2_error *err) {
    run R = {0}, *r = &R;
    dv2_lock lock = {-1, NULL, 0};
    r->c = c, r->o = o, r->dist = dist;
    memset(res, 0, sizeof *res);
    int rc = dv2_config_validate(c, err);
    if (rc) return rc;
    dv2_backend *own_be = NULL; /* no backend given: a CPU backend of our own */
    const dv2_backend *be = o->backend;
    if (!be) {
        if ((rc = dv2_backend_open(&own_be, "cpu", NULL, 0, err))) return rc;
        be = own_be;
    }
    if (!o->data || !*o->data) {
        dv2_backend_close(own_be);
        return dv2_error_set(err, DV2_EINVAL, "no training data (--data or train.dataset_path)");
    }
    r->total = dv2_config_total_iters(c);
    dv2_schedules_init(&r->sched, c, dist->world);
    r->config_text = config_text(c);
    if (o->teacher) { /* distillation: the frozen teacher, checked before anything is written */
        dv2_teacher t;
        if ((rc = dv2_teacher_open(&t, o->teacher, c, err)) ||
            (rc = dv2_train_model_init_distill(&r->m, c, &t.arch, be, err)) ||
            (rc = dv2_teacher_load(&t, &r->m, &r->teacher_digest, err)))
            goto done;
    }
    /* the data too: a path that is not a dataset leaves no run directory behind */
    if ((rc = open_data(&r->ds, o->data, err)) || (rc = dv2_dataset_load_index(r->ds, err))) goto done;
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.cfg", o->run_dir);
    if (dist->rank == 0) { /* one writer per run directory (rank 0 writes for all) */
        rc = dv2_mkdir_p(o->run_dir, err);
        if (!rc) rc = dv2_lock_acquire(&lock, o->run_dir, "the run", err);
        if (!rc && lock.stale_pid)
            notice(r, "%s: taking over the lock of process %ld, which is gone", o->run_dir, lock.stale_pid);
    }
    { /* every rank stops when rank 0 could not take the directory */
        double bad = rc != 0;
        int rc2 = dv2_dist_allreduce_max_f64(dist, &bad, 1, err);
        if (rc2) rc = rc2;
        else if (bad > 0 && !rc) rc = dv2_error_set(err, DV2_EIO, "%s: rank 0 could not take the run directory", o->run_dir);
        if (rc) goto done;
    }
    if (!o->teacher && (rc = dv2_train_model_init(&r->m, c, be, err)))
        goto done;
    if (c->train.shard_optimizer && (rc = dv2_train_model_shard(&r->m, dist, err))) goto done;
    res->optim_bytes = r->m.optim_bytes;
    res->optim_shards = r->m.sharded ? r->m.shard_w : 0;
    res->reduce_overlap = c->train.overlap_grad_reduce && dist->world > 1;
    if (o->resume) {
        rc = resume(r, err);
        if (rc == DV2_ENOTFOUND) {
            notice(r, "no checkpoint in %s: starting a new run", o->run_dir);
            rc = 0;
        } else if (rc) { /* refused: the run directory is left exactly as it was */
            goto done;
        }
    }
    /* The resume is accepted (or this is a new run): only now does the run
     * directory change, so a refused resume never rewrites config.cfg. */
    if (dist->rank == 0) {
        if ((rc = dv2_config_save(c, cfg_path, err))) goto done;
        if (!o->resume) { /* a new run: older checkpoints must not be resumed later */
            char path[4096];
            int64_t steps[4096];
            int n = dv2_ckpt_list(o->run_dir, steps, 4096);
            for (int i = 0; i < n; i++) {
                dv2_ckpt_path(path, sizeof path, o->run_dir, steps[i]);
                unlink(path);
            }
        }
    }
    if (r->it == 0) { /* a new run (or --resume with no checkpoint yet) */
        if ((rc = dv2_train_model_init_weights(&r->m, (uint64_t)c->train.seed, err))) goto done;
        if (c->student.pretrained_weights[0] && (rc = dv2_train_model_load_backbone(&r->m, c->student.pretrained_weights, err)))
            goto done;
    }
    if ((rc = broadcast_params(r, err))) goto done;
    if ((rc = dv2_train_step_create(&r->st, c, &r->m, dist, err))) goto done;
    dv2_loader_cfg lc = {0};
    lc.batch = c->train.batch_size_per_gpu;
    lc.global_size = c->crops.global_crops_size;
    lc.local_size = c->crops.local_crops_size;
    lc.n_local = c->crops.local_crops_number;
    memcpy(lc.global_scale, c->crops.global_crops_scale, sizeof lc.global_scale);
    memcpy(lc.local_scale, c->crops.local_crops_scale, sizeof lc.local_scale);
    lc.highres_from = c->train.highres_iters > 0 ? r->total - c->train.highres_iters : -1;
    lc.highres_size = c->train.highres_size;
    lc.workers = o->threads > 0 ? o->threads : (c->train.num_workers > 0 ? c->train.num_workers : 1);
    lc.depth = 3;
    lc.seed = (uint64_t)c->train.seed;
    lc.rank = dist->rank, lc.world = dist->world, lc.shuffle = c->train.shuffle;
    if ((rc = dv2_loader_create(&r->ld, r->ds, &lc, r->it, err))) goto done;
    if (dist->rank == 0 && (rc = dv2_runlog_open(&r->log, o->run_dir, r->it, err))) goto done;

    res->start_iter = r->it;
    res->total_iters = r->total;
    double t0 = dv2_now(), wait_prev = 0;
    int64_t done_here = 0;
    while (r->it < r->total) {
        double stop = dv2_graceful_requested();
        if ((rc = dv2_dist_allreduce_max_f64(dist, &stop, 1, err))) goto done;
        if (stop > 0) {
            res->interrupted = 1;
            notice(r, "stop requested: writing a checkpoint at iteration %lld", (long long)r->it);
            break;
        }
        double ts = dv2_now();
        dv2_batch *b;
        if ((rc = dv2_loader_next(r->ld, &b, err))) goto done;
        dv2_sched_values v;
        dv2_schedules_at(&r->sched, r->it, &v);
        dv2_train_step_stats s;
        dv2_backend_info i0, i1;
        r->m.be->info(r->m.be, &i0);
        rc = dv2_train_step_run(r->st, b, r->it, &v, &s, err);
        r->m.be->info(r->m.be, &i1);
        res->step_to_host += i1.to_host - i0.to_host;
        res->step_to_device += i1.to_device - i0.to_device;
        res->step_input += (b->global_px ? 1 : sizeof(float)) * 3 *
                           ((uint64_t)2 * b->B * b->Sg * b->Sg + (uint64_t)b->L * b->B * b->Sl * b->Sl);
        res->steps_run++;
        res->reduce_s += s.reduce_s;
        res->student_bytes = dv2_train_step_student_bytes(r->st, &res->student_bf16_kept);
        res->reduce_floats += s.reduce_floats, res->reduce_early += s.reduce_early;
        dv2_loader_release(r->ld, b);
        if (rc) goto done;
        double wait = dv2_loader_wait_seconds(r->ld);
        if ((rc = log_step(r, &s, &v, dv2_now() - ts, wait - wait_prev, err))) goto done;
        wait_prev = wait;
        res->last_loss = s.total;
        if (!s.finite) {
            r->bad_steps++;
            notice(r, "iteration %lld: non-finite loss or gradient, step not applied (%d of at most %d)",
                   (long long)r->it, r->bad_steps, c->train.max_bad_steps);
            if (r->bad_steps >= c->train.max_bad_steps) {
                rc = dv2_error_set(err, DV2_EINVAL, "stopping after %d non-finite steps (train.max_bad_steps); "
                                   "the last checkpoint is intact", r->bad_steps);
                goto done;
            }
        }
        r->it++;
        done_here++;
        if (c->evaluation.eval_period_iterations > 0 && r->it % c->evaluation.eval_period_iterations == 0 &&
            (rc = export_eval(r, err)))
            goto done;
        if (c->train.checkpoint_period > 0 && r->it % c->train.checkpoint_period == 0 && r->it < r->total &&
            (rc = write_checkpoint(r, err)))
            goto done;
    }
    res->seconds = dv2_now() - t0;
    res->images_per_s = res->seconds > 0 ? (double)done_here * c->train.batch_size_per_gpu * dist->world / res->seconds : 0;
    if ((rc = write_checkpoint(r, err))) goto done;
    if (dist->rank == 0) {
        char path[4096], title[256];
        snprintf(path, sizeof path, "%s/loss.svg", o->run_dir);
        snprintf(title, sizeof title, "%s %s: loss terms", o->teacher ? "dv2-distill" : "dv2-train", o->run_dir);
        if ((rc = dv2_runlog_plot(r->log, path, title, plot_keys, N_PLOT_KEYS, err))) goto done;
    }
    rc = dv2_dist_barrier(dist, err);
done:
    res->end_iter = r->it;
    res->bad_steps = r->bad_steps;
    if (r->m.be) res->digest = dv2_train_model_digest(&r->m);
    dv2_loader_free(r->ld);
    dv2_runlog_close(r->log);
    dv2_dataset_close(r->ds);
    dv2_train_step_free(r->st);
    dv2_train_model_free(&r->m);
    dv2_backend_close(own_be);
    free(r->config_text);
    dv2_lock_release(&lock);
    return rc;
}
