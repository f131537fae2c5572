/* knn.c — vector sources and the k-NN searcher of lib/search/knn.h: the
 * exact backend (OpenBLAS sgemm over streamed database blocks + a bounded
 * min-heap per query), the GPU one (kernels/cuda_knn.h) and the FAISS one
 * (lib/search/faissx.h). */
#include "search/knn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu.h"

#include "search/faissx.h"
#if defined(DV2_HAVE_CUDA) && DV2_HAVE_CUDA
#include "cuda_knn.h"
#define KNN_HAVE_CUDA 1
#else
#define KNN_HAVE_CUDA 0
#endif

int dv2_knn_cuda_built(void) { return KNN_HAVE_CUDA; }

/* ---- vector sources ------------------------------------------------------ */

int dv2_vecsrc_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    if (start < 0 || count < 0 || start + count > src->n)
        return dv2_error_set(err, DV2_EINVAL, "vector rows %lld..%lld out of range (%lld rows)",
                             (long long)start, (long long)(start + count), (long long)src->n);
    return src->read(src, out, start, count, err);
}

int dv2_knn_normalize(float *x, int64_t n, int dim, int64_t first_row, dv2_error *err) {
    int64_t bad = -1;
#pragma omp parallel for schedule(static) if (n * (int64_t)dim > 65536)
    for (int64_t i = 0; i < n; i++) {
        float *v = x + i * (int64_t)dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)v[j] * v[j];
        if (!isfinite(ss)) {
#pragma omp critical
            if (bad < 0 || i < bad) bad = i;
            continue;
        }
        if (ss > 0) {
            float inv = (float)(1.0 / sqrt(ss));
            for (int j = 0; j < dim; j++) v[j] *= inv;
        }
    }
    if (bad >= 0)
        return dv2_error_set(err, DV2_ECORRUPT, "row %lld: vector contains NaN or infinity",
                             (long long)(first_row + bad));
    return 0;
}

static int floats_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    const float *x = (const float *)src->ctx;
    memcpy(out, x + start * (int64_t)src->dim, sizeof(float) * (size_t)count * (size_t)src->dim);
    return dv2_knn_normalize(out, count, src->dim, start, err);
}

void dv2_vecsrc_floats(dv2_vecsrc *src, const float *x, int64_t n, int dim) {
    memset(src, 0, sizeof *src);
    src->n = n;
    src->dim = dim;
    src->read = floats_read;
    src->ctx = x;
}

static int rows_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    for (int64_t i = 0; i < count; i++) {
        const float *r = src->x + (size_t)(start + i) * src->ld;
        float inv = src->inv_norm[start + i], *o = out + i * (int64_t)src->dim;
        for (int j = 0; j < src->dim; j++) o[j] = r[j] * inv;
    }
    return 0;
}

void dv2_vecsrc_rows(dv2_vecsrc *src, const float *x, int64_t n, int dim, size_t ld, const float *inv_norm) {
    memset(src, 0, sizeof *src);
    src->n = n;
    src->dim = dim;
    src->read = rows_read;
    src->x = x;
    src->ld = ld;
    src->inv_norm = inv_norm;
}

/* Reads runs of consecutive parent rows at once (the common case: a --keep
 * list of a sorted pool). */
static int subset_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    int64_t i = 0;
    while (i < count) {
        int64_t first = src->rows[start + i], run = 1;
        while (i + run < count && src->rows[start + i + run] == first + run) run++;
        int rc = dv2_vecsrc_read(src->parent, out + i * (int64_t)src->dim, first, run, err);
        if (rc < 0) return rc;
        i += run;
    }
    return 0;
}

void dv2_vecsrc_subset(dv2_vecsrc *src, const dv2_vecsrc *parent, const int64_t *rows, int64_t n) {
    memset(src, 0, sizeof *src);
    src->n = n;
    src->dim = parent->dim;
    src->read = subset_read;
    src->rows = rows;
    src->parent = parent;
}

static int concat_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    int64_t base = 0;
    for (int p = 0; p < src->nparts && count > 0; p++) {
        const dv2_vecsrc *part = &src->parent[p];
        if (start < base + part->n) {
            int64_t off = start - base, take = part->n - off < count ? part->n - off : count;
            int rc = dv2_vecsrc_read(part, out, off, take, err);
            if (rc < 0) return rc;
            out += take * (int64_t)src->dim;
            start += take;
            count -= take;
        }
        base += part->n;
    }
    return 0;
}

void dv2_vecsrc_concat(dv2_vecsrc *src, const dv2_vecsrc *parts, int nparts) {
    memset(src, 0, sizeof *src);
    src->dim = nparts > 0 ? parts[0].dim : 0;
    for (int p = 0; p < nparts; p++) src->n += parts[p].n;
    src->read = concat_read;
    src->parent = parts;
    src->nparts = nparts;
}

/* ---- searcher ------------------------------------------------------------ */

struct dv2_knn {
    const dv2_vecsrc *db;
    dv2_knn_opts o;
    float *cache;            /* exact: the whole database, normalised, or NULL */
    dv2_faissx_index *index; /* faiss backend */
#if KNN_HAVE_CUDA
    dv2_cuda_knn *gpu;       /* cuda backend */
#endif
};

/* Copies the database to the GPU block by block. */
static int cuda_build(dv2_knn *s, dv2_error *err) {
#if KNN_HAVE_CUDA
    const dv2_vecsrc *db = s->db;
    int rc = dv2_cuda_knn_create(&s->gpu, db->dim, db->n, err);
    if (rc < 0) return rc;
    int64_t bs = s->o.db_block > 0 ? s->o.db_block : 8192;
    float *buf = dv2_malloc_array((size_t)bs * (size_t)db->dim, sizeof(float));
    if (!buf) return dv2_error_set(err, DV2_ENOMEM, "k-NN search: out of memory");
    for (int64_t b0 = 0; b0 < db->n && rc == 0; b0 += bs) {
        int64_t cnt = db->n - b0 < bs ? db->n - b0 : bs;
        rc = dv2_vecsrc_read(db, buf, b0, cnt, err);
        if (rc == 0) rc = dv2_cuda_knn_add(s->gpu, buf, cnt, err);
    }
    free(buf);
    return rc;
#else
    return dv2_error_set(err, DV2_EUNSUPPORTED, "this build has no CUDA search (rebuild with nvcc, CUDA=1)");
#endif
}

void dv2_knn_opts_default(dv2_knn_opts *o) {
    memset(o, 0, sizeof *o);
    o->backend = DV2_KNN_EXACT;
    o->db_block = 8192;
}

typedef struct knn_pair {
    float s;
    int64_t r;
} knn_pair;

/* a is worse than b: lower similarity, or equal similarity and higher row. */
static inline int pair_worse(knn_pair a, knn_pair b) { return a.s < b.s || (a.s == b.s && a.r > b.r); }

static void heap_sift_down(knn_pair *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, m = i;
        if (l < n && pair_worse(h[l], h[m])) m = l;
        if (l + 1 < n && pair_worse(h[l + 1], h[m])) m = l + 1;
        if (m == i) return;
        knn_pair t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_push(knn_pair *h, int *n, int k, knn_pair p) {
    if (*n < k) {
        int i = (*n)++;
        h[i] = p;
        while (i > 0) { /* sift up: the root is the worst */
            int par = (i - 1) / 2;
            if (!pair_worse(h[i], h[par])) break;
            knn_pair t = h[i];
            h[i] = h[par];
            h[par] = t;
            i = par;
        }
    } else if (pair_worse(h[0], p)) {
        h[0] = p;
        heap_sift_down(h, k, 0);
    }
}

static int pair_cmp_best_first(const void *a, const void *b) {
    knn_pair x = *(const knn_pair *)a, y = *(const knn_pair *)b;
    if (pair_worse(y, x)) return -1;
    if (pair_worse(x, y)) return 1;
    return 0;
}

/* Database rows per task: the threads split a database block into pieces
 * of this many rows, one sgemm of all the queries against a piece each.
 * The pieces are fixed by the block alone, never by the thread count: every
 * similarity is then the same element of the same call whatever the number
 * of threads (OpenBLAS computes the rows and columns at the edges of a call
 * with other instructions, so cutting the queries by thread would change
 * the last bits; tests/test_probe.c pins this). */
enum { PIECE_ROWS = 2048, QUERY_GROUP = 4096 };

static int nthreads(void) { return omp_get_max_threads() > 0 ? omp_get_max_threads() : 1; }

size_t dv2_knn_exact_peak(int64_t nq, int dim, int k, int64_t db_block) {
    size_t nt = (size_t)nthreads(), piece = db_block < PIECE_ROWS ? (size_t)db_block : PIECE_ROWS;
    if (nq > QUERY_GROUP) nq = QUERY_GROUP;
    return sizeof(float) * (size_t)db_block * (size_t)dim          /* database block */
           + sizeof(float) * nt * (size_t)nq * piece                /* a similarity tile per thread */
           + sizeof(knn_pair) * nt * (size_t)nq * (size_t)k          /* heaps per thread */
           + sizeof(int) * nt * (size_t)nq;
}

/* Adds the similarities t[0..cnt) of one query against database rows
 * r0.. to its heap h (*hn kept); scale (or NULL) multiplies them first. */
static void scan_tile(knn_pair *h, int *hn, int k, const float *t, const float *scale, int64_t r0, int64_t cnt,
                      float min_sim, int64_t self) {
    int n = *hn;
    float floor_s = n == k && h[0].s > min_sim ? h[0].s : min_sim;
    for (int64_t j = 0; j < cnt; j++) {
        float v = scale ? t[j] * scale[j] : t[j];
        if (!(v > floor_s)) continue;
        int64_t r = r0 + j;
        if (r == self) continue;
        heap_push(h, &n, k, (knn_pair){v, r});
        /* once full, only candidates above the worst kept one can enter
         * (equal ones lose the tie: their row is higher) */
        if (n == k && h[0].s > floor_s) floor_s = h[0].s;
    }
    *hn = n;
}

/* Each database block is cut into pieces that the threads take in turn;
 * a thread multiplies all the queries by its piece with a single-threaded
 * sgemm and keeps its own heap per query; the heaps of the threads are
 * merged at the end.  Under the total order (similarity, then lower row)
 * the k best are one set, so the merge does not depend on which thread saw
 * which piece.  A source in place (dv2_vecsrc_rows) is multiplied as it
 * lies, raw rows with their leading dimension, and the products scaled by
 * the rows' inverse norms. */
static int exact_search(dv2_knn *s, float *out_sim, int64_t *out_row, const float *q, int64_t nq,
                        int k, float min_sim, int64_t self_first, dv2_error *err) {
    const dv2_vecsrc *db = s->db;
    int dim = db->dim, nt = nthreads();
    int inplace = db->x != NULL;
    const float *base = inplace ? db->x : s->cache;
    /* a database in memory is one block: its pieces are shared out at once */
    int64_t bs = base ? db->n : s->o.db_block > 0 ? s->o.db_block : 8192;
    if (bs > db->n) bs = db->n > 0 ? db->n : 1;
    int64_t piece = bs < PIECE_ROWS ? bs : PIECE_ROWS;
    size_t ld = inplace ? db->ld : (size_t)dim;
    float *dbuf = base ? NULL : dv2_malloc_array((size_t)bs * (size_t)dim, sizeof(float));
    float *tiles = dv2_malloc_array((size_t)nt * (size_t)nq, (size_t)piece * sizeof(float));
    knn_pair *heap = dv2_malloc_array((size_t)nt * (size_t)nq, (size_t)k * sizeof(knn_pair));
    int *hn = dv2_calloc_array((size_t)nt * (size_t)nq, sizeof(int));
    int rc = 0;
    if ((!dbuf && !base) || !tiles || !heap || !hn) {
        rc = dv2_error_set(err, DV2_ENOMEM, "k-NN search: cannot allocate %zu bytes for %lld queries",
                           dv2_knn_exact_peak(nq, dim, k, bs), (long long)nq);
        goto done;
    }
    int blas = dv2_cpu_blas_single_begin();
    for (int64_t b0 = 0; b0 < db->n && !rc; b0 += bs) {
        int64_t cnt = db->n - b0 < bs ? db->n - b0 : bs, npieces = (cnt + piece - 1) / piece;
        if (!base && (rc = dv2_vecsrc_read(db, dbuf, b0, cnt, err)) < 0) break;
        const float *blk = base ? base + (size_t)b0 * ld : dbuf;
        int bld = base ? (int)ld : dim;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t p = 0; p < npieces; p++) {
            int t = omp_get_thread_num();
            int64_t p0 = p * piece, m = cnt - p0 < piece ? cnt - p0 : piece;
            float *tile = tiles + (size_t)t * (size_t)nq * (size_t)piece;
            /* tile (nq × m) = q (nq × dim) · piece (m × dim, rows bld apart)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)m, dim, 1.0f, q, dim,
                        blk + (size_t)p0 * (size_t)bld, bld, 0.0f, tile, (int)m);
            const float *scale = inplace ? db->inv_norm + b0 + p0 : NULL;
            for (int64_t i = 0; i < nq; i++)
                scan_tile(heap + ((size_t)t * (size_t)nq + (size_t)i) * (size_t)k, &hn[(size_t)t * (size_t)nq + (size_t)i],
                          k, tile + i * m, scale, b0 + p0, m, min_sim, self_first >= 0 ? self_first + i : -1);
        }
    }
    dv2_cpu_blas_single_end(blas);
    if (rc) goto done;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nq; i++) {
        /* merge the other threads' heaps into thread 0's */
        knn_pair *h = heap + i * (int64_t)k;
        int n = hn[i];
        for (int t = 1; t < nt; t++) {
            const knn_pair *o = heap + ((size_t)t * (size_t)nq + (size_t)i) * (size_t)k;
            for (int j = 0; j < hn[(size_t)t * (size_t)nq + (size_t)i]; j++) heap_push(h, &n, k, o[j]);
        }
        qsort(h, (size_t)n, sizeof *h, pair_cmp_best_first);
        for (int j = 0; j < k; j++) {
            out_sim[i * k + j] = j < n ? h[j].s : -INFINITY;
            out_row[i * k + j] = j < n ? h[j].r : -1;
        }
    }
done:
    free(dbuf);
    free(tiles);
    free(heap);
    free(hn);
    return rc;
}

static uint64_t row_id(const dv2_knn_opts *o, int64_t r) {
    return o->index_ids[o->index_rows ? o->index_rows[r] : r];
}

/* A saved index must have been built over this database: same dimension
 * and row count, and, when it stores ids and the caller gives them, the
 * same id at every row (an index without ids is the caller's promise). */
static int faiss_load(dv2_knn *s, dv2_error *err) {
    int rc = dv2_faissx_index_load(&s->index, s->o.index_load, err);
    if (rc < 0) return rc;
    if (dv2_faissx_index_dim(s->index) != s->db->dim || dv2_faissx_index_ntotal(s->index) != s->db->n)
        return dv2_error_set(err, DV2_EINVAL, "%s: the index holds %lld vectors of dimension %d, the pool %lld of %d",
                             s->o.index_load, (long long)dv2_faissx_index_ntotal(s->index),
                             dv2_faissx_index_dim(s->index), (long long)s->db->n, s->db->dim);
    const uint64_t *ids = dv2_faissx_index_ids(s->index);
    if (ids && s->o.index_ids)
        for (int64_t r = 0; r < s->db->n; r++)
            if (ids[r] != row_id(&s->o, r))
                return dv2_error_set(err, DV2_EINVAL,
                                     "%s: row %lld of the index holds id %llu, the pool's row %lld is id %llu: "
                                     "the index was built over another pool (or another order)",
                                     s->o.index_load, (long long)r, (unsigned long long)ids[r], (long long)r,
                                     (unsigned long long)row_id(&s->o, r));
    if (s->o.nprobe > 0 && dv2_faissx_index_nlist(s->index) > 0)
        return dv2_faissx_index_set_nprobe(s->index, s->o.nprobe, err);
    return 0;
}

static int faiss_build(dv2_knn *s, dv2_error *err) {
    const dv2_vecsrc *db = s->db;
    int dim = db->dim;
    if (s->o.index_load) return faiss_load(s, err);
    const char *factory = s->o.factory ? s->o.factory : "Flat";
    int rc = dv2_faissx_index_create(&s->index, dim, factory, err);
    if (rc < 0) return rc;
    if (!dv2_faissx_index_is_trained(s->index)) {
        int64_t nlist = dv2_faissx_index_nlist(s->index);
        int64_t tmax = s->o.train_max;
        if (tmax <= 0) tmax = nlist * 256 > 100000 ? nlist * 256 : 100000;
        int64_t nt = db->n < tmax ? db->n : tmax;
        if (nt <= 0) return dv2_error_set(err, DV2_EINVAL, "faiss index %s: no vectors to train on", factory);
        float *xt = dv2_malloc_array((size_t)nt * (size_t)dim, sizeof(float));
        if (!xt)
            return dv2_error_set(err, DV2_ENOMEM, "faiss index %s: cannot allocate %lld training vectors",
                                 factory, (long long)nt);
        /* evenly spaced rows: deterministic and spread over the whole pool */
        for (int64_t i = 0; i < nt && rc == 0; i++) {
            int64_t r = (int64_t)((__int128)i * db->n / nt);
            rc = dv2_vecsrc_read(db, xt + i * (int64_t)dim, r, 1, err);
        }
        if (rc == 0) rc = dv2_faissx_index_train(s->index, xt, nt, err);
        free(xt);
        if (rc < 0) return rc;
    }
    if (s->o.nprobe > 0 && dv2_faissx_index_nlist(s->index) > 0) {
        rc = dv2_faissx_index_set_nprobe(s->index, s->o.nprobe, err);
        if (rc < 0) return rc;
    }
    int64_t bs = s->o.db_block > 0 ? s->o.db_block : 8192;
    float *buf = dv2_malloc_array((size_t)bs * (size_t)dim, sizeof(float));
    if (!buf) return dv2_error_set(err, DV2_ENOMEM, "faiss index: cannot allocate a block of %lld rows", (long long)bs);
    for (int64_t b0 = 0; b0 < db->n && rc == 0; b0 += bs) {
        int64_t cnt = db->n - b0 < bs ? db->n - b0 : bs;
        rc = dv2_vecsrc_read(db, buf, b0, cnt, err);
        if (rc == 0) rc = dv2_faissx_index_add(s->index, buf, cnt, err);
    }
    free(buf);
    if (rc == 0 && s->o.index_save) {
        uint64_t *ids = NULL;
        if (s->o.index_ids) {
            ids = dv2_malloc_array(db->n ? (size_t)db->n : 1, sizeof *ids);
            if (!ids) return dv2_error_set(err, DV2_ENOMEM, "faiss index: out of memory for %lld ids", (long long)db->n);
            for (int64_t r = 0; r < db->n; r++) ids[r] = row_id(&s->o, r);
        }
        rc = dv2_faissx_index_save(s->index, s->o.index_save, s->o.force, ids, err);
        free(ids);
    }
    return rc;
}

static int faiss_search(dv2_knn *s, float *out_sim, int64_t *out_row, const float *q, int64_t nq, int k,
                        float min_sim, int64_t self_first, dv2_error *err) {
    int kk = self_first >= 0 ? k + 1 : k;
    float *sim = out_sim;
    int64_t *row = out_row;
    if (kk != k) {
        sim = dv2_malloc_array((size_t)nq * (size_t)kk, sizeof(float));
        row = dv2_malloc_array((size_t)nq * (size_t)kk, sizeof(int64_t));
        if (!sim || !row) {
            free(sim);
            free(row);
            return dv2_error_set(err, DV2_ENOMEM, "k-NN search: out of memory for %lld queries", (long long)nq);
        }
    }
    int rc = dv2_faissx_index_search(s->index, sim, row, q, nq, kk, err);
    if (rc == 0) {
        for (int64_t i = 0; i < nq; i++) {
            int64_t self = self_first >= 0 ? self_first + i : -1;
            int o = 0;
            for (int j = 0; j < kk && o < k; j++) {
                int64_t r = row[i * kk + j];
                float v = sim[i * kk + j];
                if (r < 0 || r == self || !(v > min_sim)) continue;
                out_sim[i * k + o] = v;
                out_row[i * k + o] = r;
                o++;
            }
            for (; o < k; o++) {
                out_sim[i * k + o] = -INFINITY;
                out_row[i * k + o] = -1;
            }
        }
    }
    if (kk != k) {
        free(sim);
        free(row);
    }
    return rc;
}

int dv2_knn_create(dv2_knn **out, const dv2_vecsrc *db, const dv2_knn_opts *o, dv2_error *err) {
    *out = NULL;
    if (db->dim <= 0) return dv2_error_set(err, DV2_EINVAL, "k-NN search: bad dimension %d", db->dim);
    dv2_knn *s = calloc(1, sizeof *s);
    if (!s) return dv2_error_set(err, DV2_ENOMEM, "k-NN search: out of memory");
    s->db = db;
    if (o)
        s->o = *o;
    else
        dv2_knn_opts_default(&s->o);
    int64_t limit = s->o.cache_bytes == 0 ? (int64_t)2 << 30 : s->o.cache_bytes;
    if (s->o.backend == DV2_KNN_EXACT && !db->x && db->n > 0 && db->n * (int64_t)db->dim * 4 <= limit) {
        /* small enough: convert once instead of once per query block */
        s->cache = dv2_malloc_array((size_t)db->n * (size_t)db->dim, sizeof(float));
        int rc = 0;
        if (s->cache) {
            int64_t bs = 65536;
            for (int64_t b0 = 0; b0 < db->n && rc == 0; b0 += bs)
                rc = dv2_vecsrc_read(db, s->cache + b0 * (int64_t)db->dim, b0, db->n - b0 < bs ? db->n - b0 : bs, err);
        }
        if (rc < 0) {
            dv2_knn_free(s);
            return rc;
        }
    }
    if (s->o.backend == DV2_KNN_FAISS || (s->o.backend == DV2_KNN_CUDA && db->n > 0)) {
        int rc = s->o.backend == DV2_KNN_FAISS ? faiss_build(s, err) : cuda_build(s, err);
        if (rc < 0) {
            dv2_knn_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void dv2_knn_free(dv2_knn *s) {
    if (!s) return;
    dv2_faissx_index_free(s->index);
    free(s->cache);
#if KNN_HAVE_CUDA
    dv2_cuda_knn_free(s->gpu);
#endif
    free(s);
}

int dv2_knn_search(dv2_knn *s, float *out_sim, int64_t *out_row, const float *q, int64_t nq, int k,
                   float min_sim, int64_t self_first, dv2_error *err) {
    if (k <= 0) return dv2_error_set(err, DV2_EINVAL, "k-NN search: k must be positive (got %d)", k);
    if (nq <= 0) return 0;
    if (nq > INT32_MAX) return dv2_error_set(err, DV2_EINVAL, "k-NN search: query block too large");
#if KNN_HAVE_CUDA
    if (s->gpu) {
        if (k > DV2_CUDA_KNN_MAX_K)
            return dv2_error_set(err, DV2_EINVAL, "k-NN search: k %d is above the GPU limit %d", k, DV2_CUDA_KNN_MAX_K);
        return dv2_cuda_knn_search(s->gpu, out_sim, out_row, q, nq, k, min_sim, self_first, err);
    }
#endif
    if (s->db->n == 0 || (s->o.backend == DV2_KNN_EXACT)) {
        if (s->db->n == 0) {
            for (int64_t i = 0; i < nq * k; i++) {
                out_sim[i] = -INFINITY;
                out_row[i] = -1;
            }
            return 0;
        }
        /* at most QUERY_GROUP queries per pass over the database bound the
         * tiles (threads × group × piece floats) whatever the query block */
        for (int64_t g0 = 0; g0 < nq; g0 += QUERY_GROUP) {
            int64_t ng = nq - g0 < QUERY_GROUP ? nq - g0 : QUERY_GROUP;
            int rc = exact_search(s, out_sim + g0 * k, out_row + g0 * k, q + g0 * (int64_t)s->db->dim, ng, k, min_sim,
                                  self_first >= 0 ? self_first + g0 : -1, err);
            if (rc < 0) return rc;
        }
        return 0;
    }
    return faiss_search(s, out_sim, out_row, q, nq, k, min_sim, self_first, err);
}
