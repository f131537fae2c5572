/* probe_eval.c — dv2-probe's evaluation pass (probe_eval.h). */
#include "eval/probe_eval.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu.h"

void dv2_probe_eval_opts_default(dv2_probe_eval_opts *o) {
    memset(o, 0, sizeof *o);
    static const int ks[] = {10, 20, 100, 200};
    memcpy(o->ks, ks, sizeof ks);
    o->nk = 4;
    o->temperature = 0.07;
    o->knn_backend = DV2_KNN_EXACT;
    o->max_iter = 1000;
    o->holdout = 0.1;
    o->block = 1024;
}

/* The C sweep (or one fit) on the training rows. */
static int fit_linear(dv2_probe_eval *e, dv2_logreg *lr, const dv2_probe_db *db, const dv2_probe_eval_opts *o,
                      dv2_error *err) {
    double t = dv2_now();
    dv2_logreg_opts lo;
    dv2_logreg_opts_default(&lo);
    lo.max_iter = o->max_iter;
    double grid[64];
    int ng = o->cs ? (o->ncs < 64 ? o->ncs : 64) : dv2_logreg_grid(grid, o->full_grid);
    if (o->cs) memcpy(grid, o->cs, sizeof(double) * (size_t)ng);
    const dv2_matrix *tr = &e->train;
    int rc = dv2_logreg_init(lr, tr->dim, (size_t)db->max_label + 1, err);
    if (!rc)
        rc = dv2_logreg_sweep(lr, &e->lr, tr->vecs, tr->ld, tr->labels, tr->rows, grid, ng, o->holdout, o->seed,
                              &lo, o->on_fit, o->ctx, err);
    if (rc) return rc;
    e->lr_fits = e->lr.nc > 1 ? e->lr.nc + 1 : 1;
    e->lr_stopped = e->lr.refit_unconverged;
    for (int i = 0; i < e->lr.nc && e->lr.nc > 1; i++) e->lr_stopped += e->lr.unconverged[i];
    e->linear_s = dv2_now() - t;
    return DV2_OK;
}

/* Streams the test matrix once; every evaluation sees each block. */
static int test_pass(dv2_probe_eval *e, dv2_matrix_reader *test, const dv2_probe_db *db, const dv2_logreg *lr,
                     const dv2_probe_eval_opts *o, dv2_error *err) {
    size_t B = o->block ? o->block : 1024, dim = e->train.dim;
    float *raw = dv2_malloc_array(B, dim * sizeof(float)), *q = dv2_malloc_array(B, dim * sizeof(float));
    uint64_t *ids = dv2_malloc_array(B, sizeof(uint64_t));
    int32_t *labels = dv2_malloc_array(B, sizeof(int32_t));
    int rc = DV2_OK;
    const char *name = e->test_name;
    if (!raw || !q || !ids || !labels)
        rc = dv2_error_set(err, DV2_ENOMEM, "out of memory for test blocks of %zu rows", B);
    uint64_t total = dv2_matrix_reader_info(test)->rows;
    if (total == DV2_MATRIX_ROWS_UNKNOWN) total = 0;
    double t = dv2_now();
    if (!rc && o->on_progress) o->on_progress(o->ctx, 0, total);
    while (!rc) {
        int64_t n = dv2_matrix_reader_read(test, ids, labels, raw, B, err);
        if (n < 0) rc = (int)n;
        if (n <= 0) break;
        for (int64_t i = 0; i < n && !rc; i++)
            if (labels[i] < 0)
                rc = dv2_error_set(err, DV2_ECORRUPT, "%s: row %" PRIu64 " (id %" PRIu64 ") has no label (%d)", name,
                                   e->test_rows + (uint64_t)i, ids[i], labels[i]);
        if (rc) break;
        if (o->linear) dv2_logreg_eval(lr, raw, dim, labels, (size_t)n, &e->lr_top1, &e->lr_top5);
        if (o->knn || o->retrieval) {
            memcpy(q, raw, (size_t)n * dim * sizeof(float));
            rc = dv2_probe_normalize(q, (size_t)n, dim, e->test_rows, name, err);
            if (!rc && o->knn) rc = dv2_probe_knn_block(&e->knn, db, q, (size_t)n, labels, e->test_rows, name, err);
            if (!rc && o->retrieval) rc = dv2_probe_retr_block(&e->retr, db, q, (size_t)n, ids, labels, err);
            if (rc) break;
        }
        e->test_rows += (uint64_t)n;
        if (o->on_progress) o->on_progress(o->ctx, e->test_rows, total);
    }
    e->test_s = dv2_now() - t;
    free(raw);
    free(q);
    free(ids);
    free(labels);
    return rc;
}

int dv2_probe_eval_run(dv2_probe_eval *e, const char *train, const char *test, const dv2_probe_eval_opts *o,
                       dv2_error *err) {
    memset(e, 0, sizeof *e);
    snprintf(e->test_name, sizeof e->test_name, "%s", test);
    double t0 = dv2_now();
    int rc = dv2_matrix_load(&e->train, train, 0, err);
    if (rc) return rc;
    e->train_loaded = 1;
    e->load_s = dv2_now() - t0;
    dv2_matrix_reader *rd = NULL;
    dv2_probe_db db = {0};
    dv2_logreg lr = {0};
    /* The k-NN search, the retrieval ranks and the logistic regression
     * split the work between OpenMP threads, each calling BLAS on its own
     * slice: a threaded BLAS underneath would only compete for the cores. */
    int blas = dv2_cpu_blas_single_begin();
    if ((rc = dv2_matrix_reader_open(&rd, test, err))) goto done;
    snprintf(e->test_name, sizeof e->test_name, "%s", dv2_matrix_reader_name(rd));
    const dv2_matrix *tr = &e->train;
    if ((rc = dv2_matrix_check_same_dim(&tr->info, train, dv2_matrix_reader_info(rd), test, err))) goto done;
    if (tr->rows == 0) {
        rc = dv2_error_set(err, DV2_EINVAL, "%s: the training matrix is empty", train);
        goto done;
    }
    if ((rc = dv2_probe_db_init(&db, tr->vecs, tr->rows, tr->dim, tr->ld, tr->labels, tr->ids, train, err)))
        goto done;
    if (o->knn && (rc = dv2_probe_knn_init(&e->knn, &db, o->ks, o->nk, o->temperature, o->uniform,
                                           o->knn_backend, err)))
        goto done;
    if (o->retrieval) {
        dv2_probe_retr_init(&e->retr);
        if ((rc = dv2_probe_db_group_labels(&db, err))) goto done;
    }
    if (o->linear && (rc = fit_linear(e, &lr, &db, o, err))) goto done;
    rc = test_pass(e, rd, &db, &lr, o, err);
done:
    dv2_cpu_blas_single_end(blas);
    dv2_probe_knn_free(&e->knn);
    dv2_logreg_free(&lr);
    dv2_probe_db_free(&db);
    dv2_matrix_reader_close(rd);
    return rc;
}

void dv2_probe_eval_free(dv2_probe_eval *e) {
    if (!e) return;
    if (e->train_loaded) dv2_matrix_free(&e->train);
    e->train_loaded = 0;
}
