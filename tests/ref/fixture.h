/* fixture.h — reader of the small PyTorch oracle files in tests/ref/fixtures
 * (written by the scripts in tests/ref).  Header-only, for tests.
 *
 * Format: magic "DV2REF01", u32 count, then count entries of
 *   u32 name length, name bytes, u32 ndim, u32 dims[ndim], f32 data[prod dims]
 * all little-endian. */
#ifndef DV2_TEST_FIXTURE_H
#define DV2_TEST_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[64];
    int ndim;
    long dims[8];
    long n;
    float *data;
} fx_array;

typedef struct {
    fx_array *a;
    int n;
} fx_file;

static int fx_u32(FILE *f, uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

/* Loads path; returns 0 or -1 (message on stderr). */
static int fx_load(fx_file *fx, const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[8];
    uint32_t cnt;
    memset(fx, 0, sizeof *fx);
    if (!f) { perror(path); return -1; }
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "DV2REF01", 8) || fx_u32(f, &cnt) || cnt > 10000) goto bad;
    fx->a = calloc(cnt, sizeof *fx->a);
    for (uint32_t i = 0; i < cnt; i++) {
        fx_array *a = &fx->a[i];
        uint32_t nl, nd, d;
        if (fx_u32(f, &nl) || nl >= sizeof a->name || fread(a->name, 1, nl, f) != nl) goto bad;
        if (fx_u32(f, &nd) || nd > 8) goto bad;
        a->ndim = (int)nd;
        a->n = 1;
        for (uint32_t k = 0; k < nd; k++) {
            if (fx_u32(f, &d)) goto bad;
            a->dims[k] = d;
            a->n *= d;
        }
        a->data = malloc((size_t)(a->n ? a->n : 1) * sizeof(float));
        if ((long)fread(a->data, sizeof(float), (size_t)a->n, f) != a->n) goto bad;
        fx->n = (int)i + 1;
    }
    fclose(f);
    return 0;
bad:
    fprintf(stderr, "%s: bad fixture file\n", path);
    fclose(f);
    return -1;
}

/* The array called name, or exits 1 (a missing array is a broken fixture). */
static fx_array *fx_get(fx_file *fx, const char *name) {
    for (int i = 0; i < fx->n; i++)
        if (!strcmp(fx->a[i].name, name)) return &fx->a[i];
    fprintf(stderr, "fixture has no array '%s'\n", name);
    exit(1);
}

/* Loads $DV2_ROOT/tests/ref/fixtures/<file> and checks its "version" array
 * against the one the test was written for; on a missing or stale fixture
 * prints how to regenerate it with tests/ref/<script> and returns -1. */
static inline int fx_load_versioned(fx_file *fx, const char *file, const char *script, int version) {
    const char *root = getenv("DV2_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/ref/fixtures/%s", root ? root : ".", file);
    if (fx_load(fx, path) < 0) {
        fprintf(stderr, "cannot read %s; regenerate: /usr/bin/python3 tests/ref/%s %s\n", path, script, path);
        return -1;
    }
    fx_array *v = fx_get(fx, "version");
    if (v->n != 1 || (int)v->data[0] != version) {
        fprintf(stderr, "%s is stale (version %g, test wants %d); regenerate: /usr/bin/python3 tests/ref/%s %s\n",
                path, v->data[0], version, script, path);
        return -1;
    }
    return 0;
}

static void fx_free(fx_file *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->a[i].data);
    free(fx->a);
}

#endif
