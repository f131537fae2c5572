/* matrix.h — the embedding matrix format (man/dv2-matrix.5): a 4096-byte
 * header then fixed-size packed rows (id u64, label i32, vector of dim f32 or
 * f16), all little-endian.  Written by dv2-embed, read by dv2-dedup,
 * dv2-retrieve and dv2-probe.
 *
 * Header (byte offsets; every reserved byte is zero):
 *     0  8     magic "DV2MATRX"
 *     8  u32   version (2; version 1 files, without params, are read too)
 *    12  u32   header size (4096)
 *    16  u32   dtype: 1 = f32, 2 = f16
 *    20  u32   dim, 1 .. DV2_MATRIX_MAX_DIM
 *    24  u32   row bytes = 12 + dim * (4 or 2)
 *    28  u32   flags (0)
 *    32  u64   row count, or DV2_MATRIX_ROWS_UNKNOWN (a hint only: a writer
 *              to a named uncompressed file records it, readers never rely
 *              on it and read rows until end of file)
 *   256  256   model     NUL-terminated UTF-8 text (what produced the rows)
 *   512  256   features  NUL-terminated UTF-8 text (which features: "cls", ...)
 *   768  1024  note      NUL-terminated UTF-8 free text
 *  1792  1024  params    NUL-terminated UTF-8 "key=value" lines: everything that
 *                        determines a row (weights digest, features, sizes, ...);
 *                        an append must bring the same lines (version 2)
 *  4096        rows
 *
 * A compressed matrix is one zstd stream of exactly these bytes; every reader
 * recognizes the zstd magic and decompresses without being told.  numpy reads
 * an uncompressed matrix in one line (the man page gives it):
 *     np.fromfile(F, [('id','<u8'),('label','<i4'),('vec','<f4',(D,))], offset=4096)
 *
 * Vectors cross the API as float32 always; f16 is converted on write (round
 * to nearest even) and on read. */
#ifndef DV2_MATRIX_H
#define DV2_MATRIX_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#define DV2_MATRIX_MAGIC "DV2MATRX"
#define DV2_MATRIX_VERSION 2
#define DV2_MATRIX_VERSION_MIN 1  /* oldest version read: 1 has no params */
#define DV2_MATRIX_HEADER_SIZE 4096
#define DV2_MATRIX_MAX_DIM (1u << 20)
#define DV2_MATRIX_ROWS_UNKNOWN UINT64_MAX
#define DV2_MATRIX_MODEL_MAX 256     /* bytes of the field, NUL included */
#define DV2_MATRIX_FEATURES_MAX 256
#define DV2_MATRIX_NOTE_MAX 1024
#define DV2_MATRIX_PARAMS_MAX 1024

enum { DV2_MATRIX_F32 = 1, DV2_MATRIX_F16 = 2 };

/* What the header says.  Strings longer than their field are refused. */
typedef struct dv2_matrix_info {
    int dtype;                              /* DV2_MATRIX_F32 or DV2_MATRIX_F16 */
    uint32_t dim;
    uint64_t rows;                          /* recorded count or DV2_MATRIX_ROWS_UNKNOWN */
    char model[DV2_MATRIX_MODEL_MAX];
    char features[DV2_MATRIX_FEATURES_MAX];
    char note[DV2_MATRIX_NOTE_MAX];
    char params[DV2_MATRIX_PARAMS_MAX];     /* "key=value\n" lines, "" when none */
    uint32_t version;                       /* as read; writers always write the current one */
} dv2_matrix_info;

/* Zeroes info and sets dtype, dim, rows = unknown and empty strings. */
void dv2_matrix_info_init(dv2_matrix_info *info, int dtype, uint32_t dim);
/* Adds the line "key=value" to info->params (printf-style value).  Keys are
 * [a-z0-9_]; values hold no newline.  DV2_EINVAL if it does not fit. */
int dv2_matrix_params_add(dv2_matrix_info *info, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies the value of key into out (n bytes); 1 if present, 0 if not. */
int dv2_matrix_params_get(const dv2_matrix_info *info, const char *key, char *out, size_t n);
/* DV2_EINVAL naming the first key whose value differs between the rows
 * already in NAME (have) and the rows about to be added (want), with both
 * values ("(none)" for a missing key); DV2_OK when the lines are the same. */
int dv2_matrix_check_same_params(const dv2_matrix_info *have, const dv2_matrix_info *want,
                                 const char *name, dv2_error *err);
/* 12 + dim * element size; 0 for an invalid dtype. */
size_t dv2_matrix_row_bytes(int dtype, uint32_t dim);
/* Header bytes <-> info.  decode validates every field; name (a path or
 * "stdin") is used in the message. */
int dv2_matrix_header_encode(uint8_t *out, const dv2_matrix_info *info, dv2_error *err);
int dv2_matrix_header_decode(dv2_matrix_info *info, const uint8_t *in, const char *name,
                             dv2_error *err);

/* IEEE half <-> float (n values; round to nearest even, inf/nan kept). */
void dv2_matrix_f32_to_f16(uint16_t *out, const float *in, size_t n);
void dv2_matrix_f16_to_f32(float *out, const uint16_t *in, size_t n);

/* ---- writer ---------------------------------------------------------------- */

typedef struct dv2_matrix_writer dv2_matrix_writer;

typedef struct dv2_matrix_write_opts {
    int force;            /* overwrite an existing path */
    int zstd;             /* compress (not with append) */
    int zstd_level;       /* 0 = default (3) */
    int append;           /* resume: see dv2_matrix_writer_open */
    const char *npy_path; /* also write FILE.npy (+ .ids.npy, .labels.npy) at close; NULL = no */
} dv2_matrix_write_opts;

/* Opens a writer for path ("-" = stdout).  opts may be NULL (defaults).
 *
 * Normal mode: the file is written under a temporary name and renamed into
 * place by dv2_matrix_writer_close (lib/core/afile.h); the row count is recorded in
 * the header when path is a named file and not compressed.
 *
 * Either mode first removes temporaries of path left by writers that were
 * killed (dv2_afile_remove_stale).
 *
 * Append mode (dv2-embed --resume): the file is written in place so that a
 * killed writer leaves every complete row behind.  If path exists it must be
 * an uncompressed matrix whose dtype and dim equal info's and whose params
 * equal info's (dv2_matrix_check_same_params; when neither has params, model
 * and features must be equal; a file without params cannot take rows that
 * have them); a partial last row is cut off and writing continues after the
 * last complete row (dv2_matrix_writer_rows tells how many were kept; use a
 * reader first to learn their ids).  If path does not exist, is empty, or
 * holds only the first bytes of a header (a writer killed while creating it)
 * it is written anew (dv2_matrix_writer_restarted then says so).  Not with
 * "-" or zstd.
 *
 * Every vector written must be finite (and, for f16, within the f16 range):
 * a NaN or infinity is DV2_ECORRUPT naming the row's id and nothing of that
 * call is written. */
int dv2_matrix_writer_open(dv2_matrix_writer **w, const char *path, const dv2_matrix_info *info,
                           const dv2_matrix_write_opts *opts, dv2_error *err);
/* Appends n rows: ids[n], labels[n] (NULL = all -1), vecs[n*dim] row-major. */
int dv2_matrix_writer_write(dv2_matrix_writer *w, const uint64_t *ids, const int32_t *labels,
                            const float *vecs, size_t n, dv2_error *err);
/* Rows in the output so far (including rows kept by append mode). */
uint64_t dv2_matrix_writer_rows(const dv2_matrix_writer *w);
/* Bytes of a partial header that append mode discarded to start over (0 when
 * it did not). */
long dv2_matrix_writer_restarted(const dv2_matrix_writer *w);
/* Pushes buffered rows to the file and fsyncs it (append mode checkpoints). */
int dv2_matrix_writer_flush(dv2_matrix_writer *w, dv2_error *err);
/* Finishes the stream, records the count, renames into place, writes the .npy
 * files if asked, and frees w (also on error, after removing the temporary). */
int dv2_matrix_writer_close(dv2_matrix_writer *w, dv2_error *err);
/* Drops everything written (the temporary is removed; in append mode the rows
 * already written stay) and frees w.  NULL is allowed. */
void dv2_matrix_writer_abort(dv2_matrix_writer *w);

/* Concatenates the matrices in[0..n) ("-" = stdin, plain or zstd) into out
 * (a writer opened with opts; "-" = stdout), rows in input order: the parts of
 * a sharded embedding job.  Every part must have the dtype, dimension and
 * params lines of the first (model and features when neither has params) and
 * no id may be in two rows: DV2_EINVAL naming the part that differs,
 * DV2_ECORRUPT naming an id found twice and both parts; nothing is written
 * then.  rows_out (may be NULL) gets the number of rows written. */
int dv2_matrix_merge(const char *out, const char *const *in, int n, const dv2_matrix_write_opts *opts,
                     uint64_t *rows_out, dv2_error *err);

/* ---- streaming reader --------------------------------------------------------- */

typedef struct dv2_matrix_reader dv2_matrix_reader;

/* Opens path ("-" = stdin), plain or zstd-compressed, and reads the header. */
int dv2_matrix_reader_open(dv2_matrix_reader **r, const char *path, dv2_error *err);
const dv2_matrix_info *dv2_matrix_reader_info(const dv2_matrix_reader *r);
const char *dv2_matrix_reader_name(const dv2_matrix_reader *r); /* path, or "stdin" */
/* Reads up to cap rows into ids[cap], labels[cap], vecs[cap*dim] (each may be
 * NULL to skip it).  Returns the number of rows read, 0 at the end, or a
 * negative status (a truncated last row is DV2_ECORRUPT naming row and byte
 * offset). */
int64_t dv2_matrix_reader_read(dv2_matrix_reader *r, uint64_t *ids, int32_t *labels, float *vecs,
                               size_t cap, dv2_error *err);
uint64_t dv2_matrix_reader_rows_read(const dv2_matrix_reader *r);
void dv2_matrix_reader_close(dv2_matrix_reader *r); /* NULL is allowed */

/* ---- whole matrix in memory ------------------------------------------------------ */

enum {
    DV2_MATRIX_LOAD_NOMAP = 1 << 0,    /* always read into malloc'd memory */
    DV2_MATRIX_LOAD_WRITABLE = 1 << 1, /* vecs may be modified (private copy-on-write map) */
};

/* A loaded matrix.  Row i's vector is vecs + i*ld (dim floats).  When the
 * file is an uncompressed f32 matrix on a regular file it is memory-mapped
 * (mapped = 1): vecs points into the mapping, ld = dim + 3 (the row stride of
 * the file in floats; rows are 4-byte aligned there), and nothing is copied
 * but ids and labels.  Otherwise vecs is a malloc'd rows x dim array (ld =
 * dim).  Either way vecs is a valid BLAS operand with leading dimension ld.
 * Read-only unless loaded with DV2_MATRIX_LOAD_WRITABLE. */
typedef struct dv2_matrix {
    dv2_matrix_info info;
    size_t rows;
    size_t dim;
    size_t ld;
    float *vecs;
    uint64_t *ids;   /* rows entries, malloc'd */
    int32_t *labels; /* rows entries, malloc'd */
    int mapped;
    void *map_;      /* private: the mapping and its length, or the buffer */
    size_t map_len_;
    float *owned_;
} dv2_matrix;

/* Loads path ("-" = stdin) whole.  flags: DV2_MATRIX_LOAD_*.  m is zeroed on
 * error, so dv2_matrix_free is always safe after init. */
int dv2_matrix_load(dv2_matrix *m, const char *path, unsigned flags, dv2_error *err);
void dv2_matrix_free(dv2_matrix *m);
/* DV2_EINVAL with "NAME_B: dimension 384 does not match NAME_A (768)" when the
 * vector dimensions differ. */
int dv2_matrix_check_same_dim(const dv2_matrix_info *a, const char *name_a,
                              const dv2_matrix_info *b, const char *name_b, dv2_error *err);
/* DV2_ECORRUPT with "NAME: row R (id I): vector contains NaN or infinity"
 * for the first such vector of the n rows of x (ld floats apart, dim used);
 * their ids are ids[0..n-1] and R counts from first_row. */
int dv2_matrix_check_finite(const float *x, size_t ld, size_t dim, int64_t n, const uint64_t *ids,
                            int64_t first_row, const char *name, dv2_error *err);

/* ---- .npy export (for users: numpy.load) ------------------------------------------ */

/* Every .npy header dv2 writes is this long (so a streaming writer can
 * rewrite it in place with the final row count). */
#define DV2_MATRIX_NPY_HEADER 128
/* Fills out[DV2_MATRIX_NPY_HEADER] with a version 1.0 .npy header: descr
 * ("<f4"), shape (rows, cols), or (rows,) when cols is 0. */
void dv2_matrix_npy_header(uint8_t *out, const char *descr, uint64_t rows, size_t cols);
/* Derived names: "x.npy" -> "x.ids.npy" / "x.labels.npy" (other names get the
 * suffix appended).  Returns a malloc'd string or NULL. */
char *dv2_matrix_npy_name(const char *npy_path, const char *suffix);
/* Writes m's vectors as a float32 (rows, dim) .npy at npy_path, its ids as a
 * uint64 (rows,) array and its labels as int32 (rows,), at the derived names;
 * each file atomically. */
int dv2_matrix_write_npy(const dv2_matrix *m, const char *npy_path, int force, dv2_error *err);
/* One array: a C-order .npy of descr ("<f4", "<u8", "<i4"), shape (rows, cols)
 * or (rows,) when cols is 0; data rows spaced ld elements apart (ld >= cols). */
int dv2_matrix_npy_write(const char *path, const char *descr, const void *data, size_t elem_size,
                         size_t rows, size_t cols, size_t ld, int force, dv2_error *err);

#endif
