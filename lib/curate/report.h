/* report.h — the static HTML page of dv2-dedup --report: the largest
 * duplicate groups and the leakage hits, with thumbnails, so a person can
 * look at what a threshold does before trusting it.
 *
 * DIR/index.html has no external assets: thumbnails are the original image
 * bytes of each shown record (extracted from the datasets with lib/format/dataset.h,
 * never re-encoded) written as DIR/img/ID.EXT and scaled by the page.  Ids
 * not found in any dataset are shown as a labelled empty box. */
#ifndef DV2_REPORT_H
#define DV2_REPORT_H

#include <stdint.h>
#include "curate/dedup.h"
#include "core/dv2.h"

typedef struct dv2_report_opts {
    const char *const *datasets; /* dataset paths searched for the images by id */
    int ndatasets;
    int max_groups;              /* groups (and leakage components) shown, 0 = 50 */
    int max_members;             /* members shown per group, 0 = 24 */
    float threshold, against_threshold;
    int k;
    const char *title;           /* page title, NULL = "dv2-dedup report" */
    int force;                   /* DIR/index.html may exist */
    int margin_rank;             /* with dv2-dedup --margin (res->bg set): its neighbour */
} dv2_report_opts;

/* Writes the report into dir (created if needed).  pool_ids[res->n] are the
 * pool ids by row; against_ids (may be NULL) the ids of the against rows. */
int dv2_report_dedup(const char *dir, const dv2_report_opts *o, const uint64_t *pool_ids,
                     const dv2_dedup_result *res, const uint64_t *against_ids, int64_t n_against,
                     dv2_error *err);

#endif
