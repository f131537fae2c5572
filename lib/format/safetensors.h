/* safetensors.h — reading and writing weight files in the safetensors format.
 *
 * Layout: u64 little-endian header length H, H bytes of JSON (an object that
 * maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]},
 * offsets relative to the data that follows the header, plus an optional
 * "__metadata__" object of string values), then the raw tensor bytes.
 *
 * The reader checks everything before trusting it: header length within the
 * file and <= 100 MB, strict JSON (lib/core/json.h), every field of every entry,
 * the shape product (overflow-checked) times the element size equal to
 * end - begin, offsets within the data, no two tensors overlapping.  The file
 * is mmap'ed read-only; tensors of dtype F32, F16, BF16 and F64 are converted
 * to float32 on read (other dtypes are listed but not readable as floats).
 *
 * The writer writes F32 tensors atomically (lib/core/afile.h) with the header
 * padded by spaces to a multiple of 8 bytes, tensors in the order given.
 *
 * What the tensors mean (official DINOv2 names, the architecture in the
 * metadata) is model/weights.h. */
#ifndef DV2_SAFETENSORS_H
#define DV2_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#define DV2_SAFETENSORS_MAX_DIMS 8
#define DV2_SAFETENSORS_MAX_HEADER (100u << 20)

enum {
    DV2_ST_F32, DV2_ST_F16, DV2_ST_BF16, DV2_ST_F64,
    DV2_ST_I64, DV2_ST_I32, DV2_ST_I16, DV2_ST_I8, DV2_ST_U8, DV2_ST_BOOL,
    DV2_ST_U16, DV2_ST_U32, DV2_ST_U64, DV2_ST_F8_E4M3, DV2_ST_F8_E5M2,
};

typedef struct dv2_safetensors_tensor {
    const char *name;       /* as stored in the file */
    int dtype;              /* DV2_ST_* */
    int ndim;
    int64_t shape[DV2_SAFETENSORS_MAX_DIMS];
    size_t numel;           /* product of shape (1 for a scalar) */
    uint64_t begin, end;    /* byte range within the data section */
} dv2_safetensors_tensor;

typedef struct dv2_safetensors_file dv2_safetensors_file;

/* Opens and validates path (mmap).  *f is NULL on error. */
int dv2_safetensors_open(dv2_safetensors_file **f, const char *path, dv2_error *err);
/* The same on a caller buffer (not copied: it must outlive *f); name is used
 * in messages. */
int dv2_safetensors_open_mem(dv2_safetensors_file **f, const void *buf, size_t n, const char *name,
                             dv2_error *err);
void dv2_safetensors_close(dv2_safetensors_file *f); /* NULL allowed */

size_t dv2_safetensors_count(const dv2_safetensors_file *f);
const dv2_safetensors_tensor *dv2_safetensors_at(const dv2_safetensors_file *f, size_t i); /* file order */
const dv2_safetensors_tensor *dv2_safetensors_find(const dv2_safetensors_file *f, const char *name);
size_t dv2_safetensors_dtype_size(int dtype);
const char *dv2_safetensors_path(const dv2_safetensors_file *f);

/* Converts tensor t to float32 into out[0..n) (n must equal t->numel).
 * DV2_EUNSUPPORTED for a non-float dtype, DV2_EINVAL for a size mismatch. */
int dv2_safetensors_read_f32(const dv2_safetensors_file *f, const dv2_safetensors_tensor *t,
                             float *out, size_t n, dv2_error *err);
/* Finds name and checks its shape (ndim dims) before reading; DV2_ENOTFOUND /
 * DV2_ECORRUPT with the name and both shapes in the message. */
int dv2_safetensors_load(const dv2_safetensors_file *f, const char *name, const int64_t *shape,
                         int ndim, float *out, dv2_error *err);

/* Metadata ("__metadata__"): value for key or NULL; pairs in file order. */
const char *dv2_safetensors_meta(const dv2_safetensors_file *f, const char *key);
size_t dv2_safetensors_meta_count(const dv2_safetensors_file *f);
const char *dv2_safetensors_meta_key(const dv2_safetensors_file *f, size_t i);
const char *dv2_safetensors_meta_val(const dv2_safetensors_file *f, size_t i);

/* ---- writing ---------------------------------------------------------- */

typedef struct dv2_safetensors_entry {
    const char *name;
    const float *data;      /* numel floats, written as F32 little-endian */
    int ndim;
    int64_t shape[DV2_SAFETENSORS_MAX_DIMS];
} dv2_safetensors_entry;

/* Writes n tensors and nmeta metadata pairs to path atomically (path "-" is
 * stdout).  Without force an existing path is DV2_EEXIST.  Duplicate or empty
 * names and the name "__metadata__" are DV2_EINVAL. */
int dv2_safetensors_write(const char *path, int force, const dv2_safetensors_entry *t, size_t n,
                          const char *const *meta_keys, const char *const *meta_vals, size_t nmeta,
                          dv2_error *err);


#endif
