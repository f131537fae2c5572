/* runlog.h — the metrics of a training run: one JSON object per line in
 * RUN/metrics.jsonl ({"step": 12, "loss": 9.81, "lr": 1e-4, ...}), kept in
 * memory as series, and drawn as a small SVG line chart (the loss curves)
 * rewritten atomically while the run goes on.
 *
 * On resume the log is reopened at the resumed step: lines of later steps
 * (written after the checkpoint the run resumes from) are dropped so the
 * file holds each step once.  Non-finite values are written as null. */
#ifndef DV2_RUNLOG_H
#define DV2_RUNLOG_H

#include <stdint.h>
#include "core/dv2.h"

typedef struct dv2_runlog dv2_runlog;

/* Opens (creates) dir/metrics.jsonl; keeps existing lines whose "step" is
 * < keep_below (use 0 for a fresh run: the file is truncated) and loads
 * them into the series. */
int dv2_runlog_open(dv2_runlog **rl, const char *dir, int64_t keep_below, dv2_error *err);
void dv2_runlog_close(dv2_runlog *rl); /* NULL allowed */

/* Appends one line {"step": step, keys[i]: vals[i], ...} and flushes it. */
int dv2_runlog_append(dv2_runlog *rl, int64_t step, const char *const *keys, const double *vals,
                      int n, dv2_error *err);

/* Number of points and the values of one series (NULL if the key is unknown). */
size_t dv2_runlog_series(const dv2_runlog *rl, const char *key, const int64_t **steps,
                         const double **vals);

/* Writes an SVG chart of the named series against the step to path
 * (atomically).  title goes above the chart. */
int dv2_runlog_plot(const dv2_runlog *rl, const char *path, const char *title,
                    const char *const *keys, int nkeys, dv2_error *err);

#endif
