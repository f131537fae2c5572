/* test_runlog.c — metrics.jsonl and the SVG chart (lib/train/runlog.h): lines are
 * valid JSON with null for non-finite values, reopening at a step drops the
 * later lines and reloads the series, the chart is written and well formed
 * (checked by Python's XML parser when available). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/afile.h"
#include "core/json.h"
#include "train/runlog.h"
#include "testutil.h"

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

int main(void) {
    dv2_error err = {0};
    dv2_runlog *rl;
    CHECKF(dv2_runlog_open(&rl, ".", 0, &err) == 0, "%s", err.msg);
    const char *keys[] = {"loss", "lr", "bad"};
    for (int s = 0; s < 10; s++) {
        double v[3] = {10.0 - s * 0.5, 1e-4 * s, s == 3 ? NAN : 1.0};
        CHECK(dv2_runlog_append(rl, s, keys, v, 3, &err) == 0);
    }
    CHECK(dv2_runlog_plot(rl, "loss.svg", "test <run>", keys, 2, &err) == 0);
    dv2_runlog_close(rl);
    CHECK(count_lines("metrics.jsonl") == 10);

    /* each line parses; line 4 has "bad": null */
    char *text;
    size_t n;
    CHECK(dv2_read_file("metrics.jsonl", 1 << 20, &text, &n, &err) == 0);
    int ok = 0, nulls = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        dv2_json_doc *doc;
        if (dv2_json_parse(&doc, p, (size_t)(nl - p), 0, &err) == 0) {
            ok++;
            const dv2_json *b = dv2_json_get(dv2_json_root(doc), "bad");
            if (b && dv2_json_type(b) == DV2_JSON_NULL) nulls++;
            dv2_json_free(doc);
        }
        p = nl + 1;
    }
    free(text);
    CHECK(ok == 10 && nulls == 1);

    /* resume at step 6: steps 6..9 are dropped, the series reloaded */
    CHECK(dv2_runlog_open(&rl, ".", 6, &err) == 0);
    const int64_t *st;
    const double *v;
    CHECK(dv2_runlog_series(rl, "loss", &st, &v) == 6);
    CHECK(st[5] == 5 && v[5] == 7.5);
    double w[3] = {1, 2, 3};
    CHECK(dv2_runlog_append(rl, 6, keys, w, 3, &err) == 0);
    CHECK(dv2_runlog_series(rl, "loss", NULL, NULL) == 7);
    CHECK(dv2_runlog_plot(rl, "loss.svg", "resumed", keys, 3, &err) == 0);
    dv2_runlog_close(rl);
    CHECK(count_lines("metrics.jsonl") == 7);

    CHECK(dv2_read_file("loss.svg", 1 << 20, &text, &n, &err) == 0);
    CHECK(strncmp(text, "<svg", 4) == 0 && strstr(text, "<polyline") && strstr(text, "</svg>"));
    free(text);
    if (system("/usr/bin/python3 -c 'import xml.dom.minidom as m; m.parse(\"loss.svg\")' 2>/dev/null") != 0 &&
        system("/usr/bin/python3 -c 1 2>/dev/null") == 0)
        CHECK(!"loss.svg is not well-formed XML");

    /* a fresh open truncates */
    CHECK(dv2_runlog_open(&rl, ".", 0, &err) == 0);
    dv2_runlog_close(rl);
    CHECK(count_lines("metrics.jsonl") == 0);
    CHECK(dv2_runlog_open(&rl, "/nonexistent/dir", 0, &err) != 0);
    return tu_finish("test_runlog");
}
