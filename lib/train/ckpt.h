/* ckpt.h — training checkpoints: RUN/ckpt-<step>.safetensors files holding
 * every float a run needs to resume (both networks, optimizer moments,
 * centers) as named F32 tensors, and its integers (step, RNG states, sampler
 * position, ...) as metadata strings.
 *
 * A checkpoint is written atomically (temporary name, fsync, rename) and
 * carries "format" = "dv2-checkpoint", "step" and "checksum": the sum over
 * tensors of XXH64(tensor bytes, seed = XXH64(name)), as 16 hex digits, so a
 * damaged file is detected on open even where the container still parses.
 * After a write only the newest `keep` checkpoints of the directory remain. */
#ifndef DV2_CKPT_H
#define DV2_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "format/safetensors.h"

/* dir/ckpt-<step, 12 digits>.safetensors */
void dv2_ckpt_path(char *buf, size_t cap, const char *dir, int64_t step);

/* Writes the checkpoint of `step` (tensors t[0..n) from host memory, plus
 * nmeta metadata pairs), then removes older checkpoints beyond `keep`. */
int dv2_ckpt_write(const char *dir, int64_t step, const dv2_safetensors_entry *t, size_t n,
                   const char *const *meta_keys, const char *const *meta_vals, size_t nmeta,
                   int keep, dv2_error *err);

/* Steps of the checkpoints in dir, newest first (at most cap); returns the
 * count (0 when none or dir is missing). */
int dv2_ckpt_list(const char *dir, int64_t *steps, int cap);

/* Opens a checkpoint and verifies format and checksum (DV2_ECORRUPT). */
int dv2_ckpt_open(dv2_safetensors_file **f, const char *path, dv2_error *err);
/* Opens the newest checkpoint of dir that verifies; *skipped counts newer
 * ones that did not (damaged).  DV2_ENOTFOUND when there is none. */
int dv2_ckpt_open_latest(dv2_safetensors_file **f, const char *dir, int64_t *step, int *skipped,
                         dv2_error *err);

/* Metadata helpers: a u64 stored as decimal text; DV2_ECORRUPT if absent or bad. */
int dv2_ckpt_meta_u64(const dv2_safetensors_file *f, const char *key, uint64_t *out, dv2_error *err);

#endif
