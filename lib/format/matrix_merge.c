/* matrix_merge.c — concatenation of embedding matrices (dv2-embed --merge):
 * the parts written by the tasks of a sharded embedding job become one
 * matrix, rows in the order of the parts.  The parts must describe the same
 * rows (dtype, dimension, and the params lines, or model and features for
 * files without params) and no id may appear twice; the output is written
 * through the matrix writer, so it appears only when complete. */
#include "format/matrix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 4096 };

typedef struct { uint64_t id; int part; } id_at;

static int cmp_id_at(const void *a, const void *b) {
    const id_at *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->part - y->part;
}

/* DV2_EINVAL when part b cannot be concatenated to part a (named a, b). */
static int check_same_rows(const dv2_matrix_info *a, const char *name_a, const dv2_matrix_info *b,
                           const char *name_b, dv2_error *err) {
    int r = dv2_matrix_check_same_dim(a, name_a, b, name_b, err);
    if (r) return r;
    if (a->dtype != b->dtype)
        return dv2_error_set(err, DV2_EINVAL, "%s: dtype %s does not match %s (%s)", name_b,
                             b->dtype == DV2_MATRIX_F16 ? "f16" : "f32", name_a,
                             a->dtype == DV2_MATRIX_F16 ? "f16" : "f32");
    if (a->params[0] || b->params[0]) {
        if ((r = dv2_matrix_check_same_params(a, b, name_b, err))) return r;
    } else if (strcmp(a->model, b->model) || strcmp(a->features, b->features)) {
        return dv2_error_set(err, DV2_EINVAL, "%s: rows of model '%s' (%s) do not match %s ('%s', %s)",
                             name_b, b->model, b->features, name_a, a->model, a->features);
    }
    return DV2_OK;
}

int dv2_matrix_merge(const char *out, const char *const *in, int n, const dv2_matrix_write_opts *opts,
                     uint64_t *rows_out, dv2_error *err) {
    if (n < 1) return dv2_error_set(err, DV2_EINVAL, "merge: no input matrices");
    dv2_matrix_reader *r = NULL;
    dv2_matrix_writer *w = NULL;
    dv2_matrix_info first;
    char first_name[256] = "";
    id_at *seen = NULL;
    size_t nseen = 0, cap = 0;
    uint64_t *ids = NULL;
    int32_t *labels = NULL;
    float *vecs = NULL;
    int rc = DV2_OK;
    for (int p = 0; p < n && !rc; p++) {
        if ((rc = dv2_matrix_reader_open(&r, in[p], err))) break;
        const dv2_matrix_info *info = dv2_matrix_reader_info(r);
        if (p == 0) {
            first = *info;
            snprintf(first_name, sizeof first_name, "%s", dv2_matrix_reader_name(r));
            dv2_matrix_info out_info = first;
            out_info.rows = DV2_MATRIX_ROWS_UNKNOWN;
            ids = malloc(CHUNK * sizeof *ids);
            labels = malloc(CHUNK * sizeof *labels);
            vecs = malloc((size_t)CHUNK * first.dim * sizeof *vecs);
            if (!ids || !labels || !vecs) {
                rc = dv2_error_set(err, DV2_ENOMEM, "merge: out of memory for rows of dimension %u", first.dim);
                break;
            }
            if ((rc = dv2_matrix_writer_open(&w, out, &out_info, opts, err))) break;
        } else if ((rc = check_same_rows(&first, first_name, info, dv2_matrix_reader_name(r), err))) {
            break;
        }
        for (;;) {
            int64_t got = dv2_matrix_reader_read(r, ids, labels, vecs, CHUNK, err);
            if (got < 0) { rc = (int)got; break; }
            if (got == 0) break;
            if (nseen + (size_t)got > cap) {
                size_t nc = cap ? cap * 2 : 65536;
                while (nc < nseen + (size_t)got) nc *= 2;
                id_at *ns = realloc(seen, nc * sizeof *ns);
                if (!ns) { rc = dv2_error_set(err, DV2_ENOMEM, "merge: out of memory for %zu ids", nc); break; }
                seen = ns, cap = nc;
            }
            for (int64_t i = 0; i < got; i++) seen[nseen++] = (id_at){ids[i], p};
            if ((rc = dv2_matrix_writer_write(w, ids, labels, vecs, (size_t)got, err))) break;
        }
        dv2_matrix_reader_close(r);
        r = NULL;
    }
    if (!rc && nseen > 1) {
        qsort(seen, nseen, sizeof *seen, cmp_id_at);
        for (size_t i = 1; i < nseen; i++)
            if (seen[i].id == seen[i - 1].id) {
                if (seen[i].part == seen[i - 1].part)
                    rc = dv2_error_set(err, DV2_ECORRUPT, "merge: id %llu is twice in %s",
                                       (unsigned long long)seen[i].id, in[seen[i].part]);
                else
                    rc = dv2_error_set(err, DV2_ECORRUPT, "merge: id %llu is in %s and in %s: the parts overlap",
                                       (unsigned long long)seen[i].id, in[seen[i - 1].part], in[seen[i].part]);
                break;
            }
    }
    if (!rc && rows_out) *rows_out = nseen;
    if (rc) dv2_matrix_writer_abort(w);
    else rc = dv2_matrix_writer_close(w, err);
    dv2_matrix_reader_close(r);
    free(seen), free(ids), free(labels), free(vecs);
    return rc;
}
