/* runlog.c — metrics.jsonl writer/reloader and the SVG loss chart (runlog.h).
 *
 * The chart is plain SVG text: a frame, 5 horizontal grid lines with
 * labels, one polyline per series (at most ~1000 points: longer series are
 * thinned by taking every n-th point, keeping the last), and a legend. */
#include "train/runlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"
#include "core/json.h"

#define MAX_SERIES 64
#define KEY_MAX 48

typedef struct series {
    char key[KEY_MAX];
    int64_t *steps;
    double *vals;
    size_t n, cap;
} series;

struct dv2_runlog {
    char *path;
    FILE *f;
    series s[MAX_SERIES];
    int ns;
};

static series *get_series(dv2_runlog *rl, const char *key) {
    for (int i = 0; i < rl->ns; i++)
        if (strcmp(rl->s[i].key, key) == 0) return &rl->s[i];
    if (rl->ns == MAX_SERIES || strlen(key) >= KEY_MAX) return NULL;
    series *s = &rl->s[rl->ns++];
    memset(s, 0, sizeof *s);
    strcpy(s->key, key);
    return s;
}

static int push(dv2_runlog *rl, const char *key, int64_t step, double v) {
    series *s = get_series(rl, key);
    if (!s) return 0; /* too many or too long: kept in the file, not charted */
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        int64_t *st = realloc(s->steps, cap * sizeof *st);
        if (!st) return DV2_ENOMEM;
        s->steps = st;
        double *va = realloc(s->vals, cap * sizeof *va);
        if (!va) return DV2_ENOMEM;
        s->vals = va;
        s->cap = cap;
    }
    s->steps[s->n] = step;
    s->vals[s->n] = v;
    s->n++;
    return 0;
}

static void fmt_num(char *buf, size_t cap, double v) {
    if (!isfinite(v)) snprintf(buf, cap, "null");
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%.9g", v);
}

/* Keeps lines with step < keep_below from an existing file; returns the
 * kept text (malloc'd) and loads the series. */
static int reload(dv2_runlog *rl, int64_t keep_below, char **kept, size_t *kept_n, dv2_error *err) {
    char *text = NULL;
    size_t n = 0;
    *kept = NULL;
    *kept_n = 0;
    int rc = dv2_read_file(rl->path, (size_t)1 << 34, &text, &n, NULL);
    if (rc) return 0; /* no file yet */
    char *out = malloc(n + 1);
    if (!out) { free(text); return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", rl->path); }
    size_t on = 0;
    char *p = text, *end = text + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a torn last line is dropped */
        size_t len = (size_t)(nl - p);
        dv2_json_doc *doc = NULL;
        if (dv2_json_parse(&doc, p, len, 0, NULL) == 0) {
            const dv2_json *root = dv2_json_root(doc);
            const dv2_json *st = dv2_json_get(root, "step");
            int64_t step;
            if (st && dv2_json_int(st, &step) && step < keep_below) {
                memcpy(out + on, p, len + 1);
                on += len + 1;
                for (size_t i = 0; i < dv2_json_len(root); i++) {
                    const char *k = dv2_json_key(root, i);
                    const dv2_json *v = dv2_json_at(root, i);
                    if (strcmp(k, "step") == 0) continue;
                    double x = dv2_json_type(v) == DV2_JSON_NUMBER ? dv2_json_num(v) : NAN;
                    if (push(rl, k, step, x)) { dv2_json_free(doc); free(text); free(out); return dv2_error_set(err, DV2_ENOMEM, "out of memory"); }
                }
            }
        }
        dv2_json_free(doc);
        p = nl + 1;
    }
    free(text);
    *kept = out;
    *kept_n = on;
    return 0;
}

int dv2_runlog_open(dv2_runlog **out, const char *dir, int64_t keep_below, dv2_error *err) {
    *out = NULL;
    dv2_runlog *rl = calloc(1, sizeof *rl);
    if (!rl) return dv2_error_set(err, DV2_ENOMEM, "runlog: out of memory");
    size_t len = strlen(dir) + 32;
    rl->path = malloc(len);
    if (!rl->path) { free(rl); return dv2_error_set(err, DV2_ENOMEM, "runlog: out of memory"); }
    snprintf(rl->path, len, "%s/metrics.jsonl", dir);
    char *kept = NULL;
    size_t kept_n = 0;
    int rc = 0;
    if (keep_below > 0) rc = reload(rl, keep_below, &kept, &kept_n, err);
    if (!rc && kept_n) rc = dv2_write_file_atomic(rl->path, kept, kept_n, err);
    free(kept);
    if (!rc) {
        rl->f = fopen(rl->path, kept_n ? "a" : "w");
        if (!rl->f) rc = dv2_error_errno(err, DV2_EIO, errno, "%s", rl->path);
    }
    if (rc) { dv2_runlog_close(rl); return rc; }
    *out = rl;
    return 0;
}

void dv2_runlog_close(dv2_runlog *rl) {
    if (!rl) return;
    if (rl->f) fclose(rl->f);
    for (int i = 0; i < rl->ns; i++) { free(rl->s[i].steps); free(rl->s[i].vals); }
    free(rl->path);
    free(rl);
}

int dv2_runlog_append(dv2_runlog *rl, int64_t step, const char *const *keys, const double *vals,
                      int n, dv2_error *err) {
    fprintf(rl->f, "{\"step\": %lld", (long long)step);
    for (int i = 0; i < n; i++) {
        char b[64];
        fmt_num(b, sizeof b, vals[i]);
        fprintf(rl->f, ", \"%s\": %s", keys[i], b);
        if (push(rl, keys[i], step, vals[i])) return dv2_error_set(err, DV2_ENOMEM, "runlog: out of memory");
    }
    fputs("}\n", rl->f);
    if (fflush(rl->f) || ferror(rl->f)) return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", rl->path);
    return 0;
}

size_t dv2_runlog_series(const dv2_runlog *rl, const char *key, const int64_t **steps,
                         const double **vals) {
    for (int i = 0; i < rl->ns; i++)
        if (strcmp(rl->s[i].key, key) == 0) {
            if (steps) *steps = rl->s[i].steps;
            if (vals) *vals = rl->s[i].vals;
            return rl->s[i].n;
        }
    return 0;
}

/* A "nice" grid step (1, 2 or 5 times a power of ten) for a range. */
static double nice_step(double range) {
    double raw = range / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

int dv2_runlog_plot(const dv2_runlog *rl, const char *path, const char *title,
                    const char *const *keys, int nkeys, dv2_error *err) {
    static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                   "#e377c2", "#7f7f7f"};
    const double W = 720, H = 420, L = 60, Rm = 150, T = 36, Bm = 40;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < nkeys; k++) {
        const int64_t *st;
        const double *v;
        size_t n = dv2_runlog_series(rl, keys[k], &st, &v);
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(v[i])) continue;
            xmin = fmin(xmin, (double)st[i]); xmax = fmax(xmax, (double)st[i]);
            ymin = fmin(ymin, v[i]); ymax = fmax(ymax, v[i]);
        }
    }
    if (!(xmax >= xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax - ymin < 1e-12) { ymax += 0.5; ymin -= 0.5; }
    double ys = nice_step(ymax - ymin);
    ymin = floor(ymin / ys) * ys;
    ymax = ceil(ymax / ys) * ys;
    dv2_afile a;
    int rc = dv2_afile_open(&a, path, 1, err);
    if (rc) return rc;
    FILE *f = a.f;
    double pw = W - L - Rm, ph = H - T - Bm;
#define PX(x) (L + ((x) - xmin) / (xmax - xmin) * pw)
#define PY(y) (T + ph - ((y) - ymin) / (ymax - ymin) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"20\" font-size=\"14\">", L);
    for (const char *c = title ? title : ""; *c; c++) {
        if (*c == '<') fputs("&lt;", f);
        else if (*c == '&') fputs("&amp;", f);
        else fputc(*c, f);
    }
    fputs("</text>\n", f);
    for (double y = ymin; y <= ymax + ys * 1e-6; y += ys) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n",
                L, PY(y), L + pw, PY(y), L - 4, PY(y) + 4, fabs(y) < ys * 1e-6 ? 0.0 : y);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n",
            L, T, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.0f</text><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>"
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">iteration</text>\n",
            L, T + ph + 16, xmin, L + pw, T + ph + 16, xmax, L + pw / 2, T + ph + 32);
    for (int k = 0; k < nkeys; k++) {
        const int64_t *st;
        const double *v;
        size_t n = dv2_runlog_series(rl, keys[k], &st, &v);
        const char *col = colors[k % 8];
        size_t every = n > 1000 ? (n + 999) / 1000 : 1;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        for (size_t i = 0; i < n; i++) {
            if ((i % every) && i != n - 1) continue;
            if (!isfinite(v[i])) continue;
            fprintf(f, "%.1f,%.1f ", PX((double)st[i]), PY(v[i]));
        }
        fputs("\"/>\n", f);
        double ly = T + 14 + 18 * k;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                L + pw + 10, ly, L + pw + 30, ly, col, L + pw + 34, ly + 4, keys[k]);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    if (ferror(f)) {
        dv2_afile_abort(&a);
        return dv2_error_set(err, DV2_EIO, "%s: write failed", path);
    }
    return dv2_afile_commit(&a, err);
}
