/* report.c — the HTML page of dv2-dedup --report (see report.h): pick the
 * largest groups and the leaked components, find their records in the
 * datasets by id, copy the original image bytes to DIR/img/, and write one
 * self-contained index.html that refers only to those files. */
#include "curate/report.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "format/dataset.h"

typedef struct comp_info {
    int64_t root, size;
    int leak;
} comp_info;

static int cmp_comp(const void *a, const void *b) {
    const comp_info *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->root < y->root ? -1 : x->root > y->root;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Image file extension from the first bytes; NULL when a browser cannot show it. */
static const char *image_ext(const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return "jpg";
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "gif";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "webp";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "bmp";
    return NULL;
}

/* Wanted ids (sorted, unique) -> the file name written for each, or NULL. */
typedef struct thumbs {
    uint64_t *ids;
    char **file;
    char **key;    /* the record's key, shown under the image */
    size_t n;
} thumbs;

static int64_t thumbs_find(const thumbs *t, uint64_t id) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (t->ids[m] < id) lo = m + 1;
        else hi = m;
    }
    return lo < t->n && t->ids[lo] == id ? (int64_t)lo : -1;
}

/* Scans the datasets' indexes for the wanted ids and writes their bytes. */
static int extract(thumbs *t, const char *dir, const dv2_report_opts *o, dv2_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/img", dir);
    int rc = dv2_mkdir_p(path, err);
    if (rc < 0) return rc;
    dv2_recbuf buf;
    dv2_recbuf_init(&buf);
    for (int d = 0; d < o->ndatasets && rc == 0; d++) {
        dv2_dataset *ds;
        rc = dv2_dataset_open(&ds, o->datasets[d], err);
        if (rc < 0) break;
        if (!dv2_dataset_random_access(ds)) {
            dv2_dataset_close(ds);
            rc = dv2_error_set(err, DV2_EINVAL, "%s: --shards needs a dataset directory or a shard file, not a stream",
                               o->datasets[d]);
            break;
        }
        rc = dv2_dataset_load_index(ds, err);
        uint64_t cnt = rc == 0 ? dv2_dataset_count(ds) : 0;
        for (uint64_t i = 0; i < cnt && rc == 0; i++) {
            uint64_t id;
            int32_t label;
            rc = dv2_dataset_entry(ds, i, &id, &label, err);
            if (rc < 0) break;
            int64_t w = thumbs_find(t, id);
            if (w < 0 || t->file[w]) continue;
            dv2_record rec;
            rc = dv2_dataset_get(ds, i, &rec, &buf, err);
            if (rc < 0) break;
            if (!t->key[w] && rec.key && !(t->key[w] = strdup(rec.key))) {
                rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
                break;
            }
            const char *ext = image_ext(rec.data, rec.size);
            if (!ext) continue;
            char name[64];
            snprintf(name, sizeof name, "img/%" PRIu64 ".%s", id, ext);
            snprintf(path, sizeof path, "%s/%s", dir, name);
            rc = dv2_write_file_atomic(path, rec.data, rec.size, err);
            if (rc < 0) break;
            t->file[w] = strdup(name);
            if (!t->file[w]) rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
        }
        dv2_dataset_close(ds);
    }
    dv2_recbuf_free(&buf);
    return rc;
}

static void put_img(FILE *f, const thumbs *t, uint64_t id, const char *caption, int rep) {
    int64_t w = thumbs_find(t, id);
    fprintf(f, "<figure class=\"%s\">", rep ? "rep" : "");
    if (w >= 0 && t->file[w])
        fprintf(f, "<img src=\"%s\" alt=\"%" PRIu64 "\">", t->file[w], id);
    else
        fprintf(f, "<div class=\"missing\">no image</div>");
    fprintf(f, "<figcaption>");
    if (w >= 0 && t->key[w]) { /* keys are checked free of control characters; escape markup */
        for (const char *c = t->key[w]; *c; c++) {
            if (*c == '<') fputs("&lt;", f);
            else if (*c == '>') fputs("&gt;", f);
            else if (*c == '&') fputs("&amp;", f);
            else if (*c == '"') fputs("&quot;", f);
            else fputc(*c, f);
        }
        fputs("<br>", f);
    }
    fprintf(f, "%" PRIu64 "<br>%s</figcaption></figure>\n", id, caption);
}

static void sim_text(char *b, size_t n, const char *what, float s) {
    if (isfinite(s)) snprintf(b, n, "%s %.3f", what, s);
    else snprintf(b, n, "%s -", what);
}

/* appends ", bg S" (the margin's background) to a caption */
static void bg_text(char *b, size_t n, float s) {
    size_t l = strlen(b);
    if (l + 1 < n) {
        if (isfinite(s)) snprintf(b + l, n - l, ", bg %.3f", s);
        else snprintf(b + l, n - l, ", bg -");
    }
}

int dv2_report_dedup(const char *dir, const dv2_report_opts *o, const uint64_t *pool_ids,
                     const dv2_dedup_result *res, const uint64_t *against_ids, int64_t n_against,
                     dv2_error *err) {
    int max_groups = o->max_groups > 0 ? o->max_groups : 50;
    int max_members = o->max_members > 0 ? o->max_members : 24;
    int64_t n = res->n;
    int rc = dv2_mkdir_p(dir, err);
    if (rc < 0) return rc;
    /* components by size, biggest first */
    int64_t ncomp = 0;
    for (int64_t i = 0; i < n; i++) ncomp += res->root[i] == i;
    comp_info *ci = dv2_calloc_array(ncomp ? (size_t)ncomp : 1, sizeof *ci);
    int64_t *slot = dv2_malloc_array(n ? (size_t)n : 1, sizeof(int64_t));
    thumbs t = {0};
    if (!ci || !slot) {
        rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
        goto done;
    }
    for (int64_t i = 0, c = 0; i < n; i++)
        if (res->root[i] == i) {
            ci[c].root = i;
            slot[i] = c++;
        }
    for (int64_t i = 0; i < n; i++) {
        comp_info *x = &ci[slot[res->root[i]]];
        x->size++;
        if (res->status[i] == DV2_DEDUP_LEAK) x->leak = 1;
    }
    qsort(ci, (size_t)ncomp, sizeof *ci, cmp_comp);
    /* the shown groups: the largest multi-image components, then the leaked ones */
    int64_t ngroups = 0, nleak = 0;
    for (int64_t c = 0; c < ncomp && ngroups < max_groups && ci[c].size > 1; c++) ngroups++;
    for (int64_t c = 0; c < ncomp; c++) nleak += ci[c].leak;
    uint8_t *shown = dv2_calloc_array(ncomp ? (size_t)ncomp : 1, 1);
    if (!shown) {
        rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
        goto done;
    }
    for (int64_t c = 0; c < ngroups; c++) shown[c] = 1;
    for (int64_t c = 0, k = 0; c < ncomp && k < max_groups; c++)
        if (ci[c].leak) shown[c] = 2, k++;
    for (int64_t c = 0; c < ncomp; c++) slot[ci[c].root] = c; /* root -> sorted position */
    /* the ids whose images are wanted */
    size_t cap = 0;
    for (int64_t i = 0; i < n; i++)
        if (shown[slot[res->root[i]]]) cap += 2;
    t.ids = dv2_malloc_array(cap ? cap : 1, sizeof(uint64_t));
    if (!t.ids) {
        free(shown);
        rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (shown[slot[res->root[i]]]) {
            t.ids[t.n++] = pool_ids[i];
            if (res->leak_row[i] >= 0 && against_ids && res->leak_row[i] < n_against)
                t.ids[t.n++] = against_ids[res->leak_row[i]];
        }
    qsort(t.ids, t.n, sizeof *t.ids, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < t.n; i++)
        if (u == 0 || t.ids[i] != t.ids[u - 1]) t.ids[u++] = t.ids[i];
    t.n = u;
    t.file = dv2_calloc_array(t.n ? t.n : 1, sizeof(char *));
    t.key = dv2_calloc_array(t.n ? t.n : 1, sizeof(char *));
    if (!t.file || !t.key) rc = dv2_error_set(err, DV2_ENOMEM, "report: out of memory");
    if (rc == 0) rc = extract(&t, dir, o, err);
    if (rc < 0) {
        free(shown);
        goto done;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/index.html", dir);
    dv2_afile af;
    rc = dv2_afile_open(&af, path, 1, err); /* the report directory is ours to refresh */
    if (rc < 0) {
        free(shown);
        goto done;
    }
    FILE *f = af.f;
    const char *title = o->title ? o->title : "dv2-dedup report";
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n<style>\n"
               "body{font-family:sans-serif;margin:1em;background:#fff;color:#222}\n"
               "section{border-top:1px solid #ccc;padding:.5em 0}\n"
               "figure{display:inline-block;margin:4px;text-align:center;vertical-align:top;width:136px}\n"
               "figure img{width:128px;height:128px;object-fit:contain;background:#eee;border:2px solid #ddd}\n"
               "figure.rep img{border-color:#2a7}\n"
               ".missing{width:128px;height:128px;background:#eee;line-height:128px;color:#999}\n"
               "figcaption{font-size:11px;word-break:break-all}\n"
               "h2{font-size:1.1em}\n.leak img{border-color:#c33}\n</style></head><body>\n",
            title);
    fprintf(f, "<h1>%s</h1>\n<p>%" PRId64 " images; kept %" PRId64 ", removed %" PRId64 " as copies, %" PRId64
               " as leakage; %" PRId64 " duplicate groups, the largest of %" PRId64 " images. "
               "k = %d, copy threshold %.3f, leakage threshold %.3f. The green frame marks the image kept "
               "(the first of its group in pool order).</p>\n",
            title, n, res->kept, res->copies, res->leaked, res->multi_components, res->largest, o->k,
            o->threshold, o->against_threshold);
    if (res->bg)
        fprintf(f, "<p>Margin %.3f: an edge, and a leak, also beat by it the similarity of each image's "
                   "neighbour %d (its background, in the captions).</p>\n",
                res->margin, o->margin_rank);
    fprintf(f, "<h2 id=\"groups\">Largest duplicate groups (%" PRId64 " shown)</h2>\n", ngroups);
    for (int64_t c = 0; c < ncomp; c++) {
        if (shown[c] != 1) continue;
        fprintf(f, "<section class=\"group\"><h3>group %" PRId64 ": %" PRId64 " images%s</h3>\n", res->comp[ci[c].root],
                ci[c].size, ci[c].leak ? " (dropped: leakage)" : "");
        int m = 0;
        for (int64_t i = ci[c].root; i < n && m < max_members; i++)
            if (res->root[i] == ci[c].root) {
                char cap[64];
                sim_text(cap, sizeof cap, "best", res->best_sim[i]);
                if (res->bg) bg_text(cap, sizeof cap, res->bg[i]);
                put_img(f, &t, pool_ids[i], cap, i == ci[c].root);
                m++;
            }
        if (ci[c].size > m) fprintf(f, "<p>... and %" PRId64 " more</p>\n", ci[c].size - m);
        fprintf(f, "</section>\n");
    }
    fprintf(f, "<h2 id=\"leakage\">Leakage hits (%" PRId64 " components dropped)</h2>\n", nleak);
    for (int64_t c = 0; c < ncomp; c++) {
        if (shown[c] != 2) continue;
        fprintf(f, "<section class=\"leak\"><h3>component %" PRId64 ": %" PRId64 " images</h3>\n",
                res->comp[ci[c].root], ci[c].size);
        int m = 0;
        for (int64_t i = ci[c].root; i < n && m < max_members; i++)
            if (res->root[i] == ci[c].root) {
                char cap[64];
                sim_text(cap, sizeof cap, "leak", res->leak_sim[i]);
                if (res->bg) bg_text(cap, sizeof cap, res->bg[i]);
                put_img(f, &t, pool_ids[i], cap, 0);
                /* the eval image of each member that made the component leak */
                if (res->leak_row[i] >= 0 && against_ids && res->leak_row[i] < n_against &&
                    res->leak_sim[i] > o->against_threshold &&
                    (!res->bg || res->leak_sim[i] - res->bg[i] > res->margin))
                    put_img(f, &t, against_ids[res->leak_row[i]], "eval image", 0);
                m++;
            }
        fprintf(f, "</section>\n");
    }
    fprintf(f, "</body></html>\n");
    free(shown);
    rc = dv2_afile_commit(&af, err);
done:
    for (size_t i = 0; t.file && i < t.n; i++) free(t.file[i]);
    for (size_t i = 0; t.key && i < t.n; i++) free(t.key[i]);
    free(t.file);
    free(t.key);
    free(t.ids);
    free(ci);
    free(slot);
    return rc;
}
