/* test_image.c — image decoding, resizing and augmentations.
 *
 * Without arguments: self-contained checks (round trips, size limits, corrupt
 * and truncated inputs never crash, resize invariants, multi-crop shapes and
 * determinism, the multi-crop probabilities).  With `--augment-dump DIR
 * IMAGE`: writes random crops and their parameters for a torchvision replay.
 * With `--parity DIR`: compares against the PIL/torchvision
 * references that tests/ref/image_ref.py wrote into DIR (driven by
 * tests/t_image_parity.sh).  Tolerances, each with its reason:
 *   decode, resized crop, flip, color ops, grayscale, solarize: exact (same
 *     libjpeg-turbo, same integer/float arithmetic as PIL);
 *   eval transform: 1e-6 absolute on normalized floats (the uint8 pixels are
 *     exact; allows torch to divide by 255 as a multiply by the reciprocal);
 *   blur: at most 1 level on at most 0.5% of samples (torch sums 81 float32
 *     products in its own order; a sum within ~1e-5 of .5 may round either way). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/augment.h"
#include "image/image.h"
#include "image/resize.h"
#include "core/rng.h"
#include "testutil.h"

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            else b = nb;
        }
    }
    fclose(f);
    *n = len;
    return b;
}

/* ---- self-contained checks ---- */

static void fill_pattern(dv2_image *img, int w, int h, uint64_t seed) {
    CHECK(dv2_image_resize_buffer(img, w, h, NULL) == 0);
    dv2_rng r;
    dv2_rng_seed(&r, seed, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) /* smooth gradient plus noise: JPEG-friendly */
                img->rgb[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((x * 255 / (w > 1 ? w - 1 : 1) + y * (c + 1) * 3 + (int)dv2_rng_below(&r, 16)) & 255);
}

static void test_roundtrips(void) {
    dv2_image a, b;
    dv2_image_init(&a);
    dv2_image_init(&b);
    fill_pattern(&a, 37, 23, 1);
    uint8_t *buf;
    size_t n;
    CHECK(dv2_image_encode_ppm_alloc(&buf, &n, &a, NULL) == 0);
    CHECK(dv2_image_sniff(buf, n) == DV2_IMAGE_PNM);
    CHECK(dv2_image_decode(&b, buf, n, NULL) == 0);
    CHECK(b.w == 37 && b.h == 23 && memcmp(a.rgb, b.rgb, 37 * 23 * 3) == 0);
    /* truncated raster */
    dv2_error err;
    CHECK(dv2_image_decode(&b, buf, n - 1, &err) == DV2_ECORRUPT);
    CHECK(strstr(err.msg, "truncated") != NULL);
    free(buf);

    /* JPEG: a smooth image, so that quality 95 is close to lossless. */
    for (int y = 0; y < 23; y++)
        for (int x = 0; x < 37; x++)
            for (int c = 0; c < 3; c++) a.rgb[(y * 37 + x) * 3 + c] = (uint8_t)(40 + 4 * x + 3 * y + 20 * c);
    CHECK(dv2_image_encode_jpeg_alloc(&buf, &n, &a, 95, NULL) == 0);
    CHECK(dv2_image_sniff(buf, n) == DV2_IMAGE_JPEG);
    int w, h, f;
    CHECK(dv2_image_info(&w, &h, &f, buf, n, NULL) == 0 && w == 37 && h == 23 && f == DV2_IMAGE_JPEG);
    CHECK(dv2_image_decode(&b, buf, n, NULL) == 0);
    CHECK(b.w == 37 && b.h == 23);
    double mad = 0;
    for (size_t i = 0; i < 37 * 23 * 3; i++) mad += fabs((double)a.rgb[i] - b.rgb[i]);
    mad /= 37 * 23 * 3;
    CHECKF(mad < 3, "JPEG q95 mean abs diff %.2f", mad);
    /* Every truncation and many byte flips: an error or an image, never a crash. */
    int errors = 0;
    for (size_t cut = 0; cut < n; cut += 7) errors += dv2_image_decode(&b, buf, cut, NULL) != 0;
    CHECKF(errors > 0, "truncated JPEGs all decoded");
    CHECK(dv2_image_decode(&b, buf, n / 2, &err) == DV2_ECORRUPT);
    dv2_rng r;
    dv2_rng_seed(&r, 7, 0);
    uint8_t *mut = malloc(n);
    for (int it = 0; it < 400; it++) {
        memcpy(mut, buf, n);
        int flips = 1 + (int)dv2_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) mut[dv2_rng_below(&r, n)] ^= (uint8_t)(1 + dv2_rng_below(&r, 255));
        int rc = dv2_image_decode(&b, mut, n, NULL);
        CHECK(rc == 0 || rc == DV2_ECORRUPT || rc == DV2_ENOMEM || rc == DV2_EUNSUPPORTED);
        if (rc == 0) CHECK(b.w > 0 && b.h > 0 && b.rgb != NULL);
    }
    free(mut);
    free(buf);
    dv2_image_free(&a);
    dv2_image_free(&b);
}

static void test_limits(void) {
    dv2_image b;
    dv2_image_init(&b);
    dv2_error err;
    const char *huge = "P6\n60000 60000\n255\n";
    CHECK(dv2_image_decode(&b, huge, strlen(huge), &err) == DV2_ENOMEM);
    CHECK(b.rgb == NULL); /* rejected before allocating */
    const char *big = "P5 70000 2 255 ";
    CHECK(dv2_image_decode(&b, big, strlen(big), &err) == DV2_ENOMEM);
    const char *zero = "P5 0 2 255 ";
    CHECK(dv2_image_decode(&b, zero, strlen(zero), &err) == DV2_ECORRUPT);
    const char *maxv = "P5 1 1 0 x";
    CHECK(dv2_image_decode(&b, maxv, strlen(maxv), &err) == DV2_ECORRUPT);
    /* PGM with maxval 15 scales to 0..255 */
    const char pgm[] = "P5\n# c\n2 1\n15\n\x00\x0f";
    CHECK(dv2_image_decode(&b, pgm, sizeof pgm - 1, &err) == 0);
    CHECK(b.w == 2 && b.rgb[0] == 0 && b.rgb[3] == 255 && b.rgb[4] == 255);
    /* A PNG IHDR claiming 100000 x 100000. */
    uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    int w, h, f;
    CHECK(dv2_image_info(&w, &h, &f, png, sizeof png, &err) == DV2_ENOMEM);
    CHECK(dv2_image_decode(&b, png, sizeof png, &err) != 0);
    CHECK(dv2_image_decode(&b, "GIF89a", 6, &err) == DV2_ECORRUPT);
    CHECK(dv2_image_decode(&b, "", 0, &err) == DV2_ECORRUPT);
    /* A JPEG header alone. */
    const uint8_t soi[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
    CHECK(dv2_image_decode(&b, soi, sizeof soi, &err) == DV2_ECORRUPT);
    dv2_image_free(&b);
}

static void test_png_corrupt(void) {
    size_t n;
    uint8_t *buf = read_all("/usr/lib/python3/dist-packages/skimage/data/chelsea.png", &n);
    if (!buf) return; /* the parity test covers real PNGs where they exist */
    dv2_image b;
    dv2_image_init(&b);
    CHECK(dv2_image_decode(&b, buf, n, NULL) == 0 && b.w == 451 && b.h == 300);
    dv2_error err;
    CHECK(dv2_image_decode(&b, buf, n / 2, &err) == DV2_ECORRUPT);
    for (size_t cut = 8; cut < n; cut += n / 97) CHECK(dv2_image_decode(&b, buf, cut, NULL) != 0);
    dv2_rng r;
    dv2_rng_seed(&r, 9, 0);
    uint8_t *mut = malloc(n);
    for (int it = 0; it < 60; it++) {
        memcpy(mut, buf, n);
        mut[8 + dv2_rng_below(&r, 200)] ^= 0x5a; /* header and first chunks */
        mut[dv2_rng_below(&r, n)] ^= 0x81;
        int rc = dv2_image_decode(&b, mut, n, NULL);
        CHECK(rc == 0 || rc == DV2_ECORRUPT || rc == DV2_ENOMEM || rc == DV2_EUNSUPPORTED);
    }
    free(mut);
    free(buf);
    dv2_image_free(&b);
}

static void test_resize(void) {
    dv2_image a, b, c;
    dv2_image_init(&a);
    dv2_image_init(&b);
    dv2_image_init(&c);
    /* A constant image stays constant under any resize (weights sum to 1). */
    CHECK(dv2_image_resize_buffer(&a, 53, 41, NULL) == 0);
    memset(a.rgb, 200, 53 * 41 * 3);
    CHECK(dv2_resize_bicubic(&b, &a, 0, 0, 53, 41, 17, 90, NULL) == 0);
    int same = 1;
    for (int i = 0; i < 17 * 90 * 3; i++) same &= b.rgb[i] == 200;
    CHECK(same);
    /* Same size: a copy. */
    fill_pattern(&a, 53, 41, 3);
    CHECK(dv2_resize_bicubic(&b, &a, 0, 0, 53, 41, 53, 41, NULL) == 0);
    CHECK(memcmp(a.rgb, b.rgb, 53 * 41 * 3) == 0);
    /* A window equals the same part of the full resize. */
    CHECK(dv2_resize_bicubic(&b, &a, 2, 3, 40, 30, 31, 77, NULL) == 0);
    CHECK(dv2_resize_bicubic_window(&c, &a, 2, 3, 40, 30, 31, 77, 5, 11, 20, 50, NULL) == 0);
    int eq = 1;
    for (int y = 0; y < 50; y++) eq &= memcmp(c.rgb + (size_t)y * 20 * 3, b.rgb + ((size_t)(y + 11) * 31 + 5) * 3, 60) == 0;
    CHECK(eq);
    /* Bad regions are errors. */
    CHECK(dv2_resize_bicubic(&b, &a, 50, 0, 10, 10, 5, 5, NULL) == DV2_EINVAL);
    int ow, oh;
    dv2_resize_short_side(&ow, &oh, 640, 427, 256);
    CHECK(ow == 383 && oh == 256);
    dv2_resize_short_side(&ow, &oh, 28, 28, 56);
    CHECK(ow == 56 && oh == 56);
    /* Eval transform of a constant image: every value is (v/255 - mean)/std. */
    memset(a.rgb, 128, 53 * 41 * 3);
    float *t = malloc(sizeof(float) * 3 * 32 * 32);
    CHECK(dv2_resize_eval_transform(t, &a, 36, 32, &c, NULL) == 0);
    CHECK(fabsf(t[0] - (128 / 255.0f - 0.485f) / 0.229f) < 1e-6f);
    CHECK(fabsf(t[3 * 32 * 32 - 1] - (128 / 255.0f - 0.406f) / 0.225f) < 1e-6f);
    free(t);
    dv2_image_free(&a);
    dv2_image_free(&b);
    dv2_image_free(&c);
}

static void test_augment(void) {
    dv2_image a, s;
    dv2_image_init(&a);
    dv2_image_init(&s);
    fill_pattern(&s, 120, 90, 5);
    /* RandomResizedCrop boxes stay inside and, when not the fallback, within the scale range. */
    dv2_rng r;
    dv2_rng_seed(&r, 11, 0);
    for (int i = 0; i < 2000; i++) {
        int x, y, w, h, W = 5 + (int)dv2_rng_below(&r, 300), H = 5 + (int)dv2_rng_below(&r, 300);
        dv2_augment_rrc_box(&x, &y, &w, &h, W, H, 0.05, 0.32, &r);
        CHECK(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= W && y + h <= H);
    }
    /* Flip twice is the identity; solarize twice too for values >= 128 only. */
    CHECK(dv2_image_resize_buffer(&a, s.w, s.h, NULL) == 0);
    memcpy(a.rgb, s.rgb, (size_t)s.w * s.h * 3);
    dv2_augment_flip(&a);
    CHECK(a.rgb[0] == s.rgb[(s.w - 1) * 3]);
    dv2_augment_flip(&a);
    CHECK(memcmp(a.rgb, s.rgb, (size_t)s.w * s.h * 3) == 0);
    /* Multi-crop: shapes, finite values, determinism per seed. */
    dv2_multicrop_cfg cfg;
    dv2_multicrop_cfg_default(&cfg);
    cfg.global_size = 56;
    cfg.local_size = 28;
    cfg.n_local = 3;
    size_t gn = 2 * 3 * 56 * 56, ln = 3 * 3 * 28 * 28;
    float *g1 = malloc(gn * 4), *l1 = malloc(ln * 4), *g2 = malloc(gn * 4), *l2 = malloc(ln * 4);
    dv2_augment_work w;
    dv2_augment_work_init(&w);
    dv2_rng_seed(&r, 42, 3);
    CHECK(dv2_augment_multicrop(g1, l1, &s, &cfg, &r, &w, NULL) == 0);
    dv2_rng_seed(&r, 42, 3);
    CHECK(dv2_augment_multicrop(g2, l2, &s, &cfg, &r, &w, NULL) == 0);
    CHECK(memcmp(g1, g2, gn * 4) == 0 && memcmp(l1, l2, ln * 4) == 0);
    int finite = 1;
    for (size_t i = 0; i < gn; i++) finite &= isfinite(g1[i]) && g1[i] > -2.2f && g1[i] < 2.7f;
    CHECK(finite);
    dv2_rng_seed(&r, 43, 3);
    CHECK(dv2_augment_multicrop(g2, l2, &s, &cfg, &r, &w, NULL) == 0);
    CHECK(memcmp(g1, g2, gn * 4) != 0);
    /* the u8 crops (what the loader sends to the device) normalise to
     * exactly the float crops of the same draws */
    uint8_t *gu = malloc(gn), *lu = malloc(ln);
    dv2_rng_seed(&r, 42, 3);
    CHECK(dv2_augment_multicrop_u8(gu, lu, &s, &cfg, &r, &w, NULL) == 0);
    for (int k = 0; k < 2 + cfg.n_local; k++) {
        int S = k < 2 ? 56 : 28;
        dv2_image v = {S, S, k < 2 ? gu + (size_t)k * 3 * S * S : lu + (size_t)(k - 2) * 3 * S * S, 0};
        dv2_resize_to_tensor(g2, &v);
        const float *want = k < 2 ? g1 + (size_t)k * 3 * S * S : l1 + (size_t)(k - 2) * 3 * S * S;
        CHECKF(memcmp(g2, want, sizeof(float) * 3 * S * S) == 0, "crop %d: u8 path differs", k);
    }
    free(gu); free(lu);
    free(g1); free(g2); free(l1); free(l2);
    dv2_augment_work_free(&w);
    dv2_image_free(&a);
    dv2_image_free(&s);
}

/* Probabilities of the multi-crop choices (spec §4.2 with the blur quirk),
 * and applying recorded parameters reproduces each crop. */
static void test_multicrop_stats(void) {
    dv2_image s;
    dv2_image_init(&s);
    fill_pattern(&s, 40, 30, 8);
    dv2_multicrop_cfg cfg;
    dv2_multicrop_cfg_default(&cfg);
    cfg.global_size = 12;
    cfg.local_size = 8;
    cfg.n_local = 2;
    float g[2 * 3 * 12 * 12], l[2 * 3 * 8 * 8], re[3 * 12 * 12];
    dv2_augment_params rec[4];
    dv2_augment_work w;
    dv2_augment_work_init(&w);
    dv2_rng r;
    dv2_rng_seed(&r, 5, 0);
    enum { ITERS = 3000 };
    int blur[4] = {0}, sol[4] = {0}, flip = 0, jit = 0, gray = 0, ranges = 1, perms = 1, replay = 1;
    double area_g = 0, area_l = 0;
    for (int it = 0; it < ITERS; it++) {
        CHECK(dv2_augment_multicrop_rec(g, l, rec, &s, &cfg, &r, &w, NULL) == 0);
        for (int k = 0; k < 4; k++) {
            dv2_augment_params *p = &rec[k];
            blur[k] += p->blur;
            sol[k] += p->solarize;
            flip += p->flip;
            jit += p->jitter;
            gray += p->gray;
            if (k < 2) area_g += (double)p->w * p->h / (40.0 * 30.0);
            else area_l += (double)p->w * p->h / (40.0 * 30.0);
            if (p->jitter) {
                ranges &= p->brightness >= 0.6f && p->brightness <= 1.4f && p->contrast >= 0.6f &&
                          p->contrast <= 1.4f && p->saturation >= 0.8f && p->saturation <= 1.2f &&
                          fabs(p->hue) <= 0.1;
                int seen = 0;
                for (int j = 0; j < 4; j++) seen |= 1 << p->order[j];
                perms &= seen == 15;
            }
            if (p->blur) ranges &= p->sigma >= 0.1f && p->sigma <= 2.0f;
        }
        if (it < 50) { /* replaying the record of global crop 2 gives the same tensor */
            CHECK(dv2_augment_apply(re, &s, &rec[1], &w, NULL) == 0);
            replay &= memcmp(re, g + 3 * 12 * 12, sizeof re) == 0;
        }
    }
    CHECK(ranges && perms && replay);
    CHECKF(blur[0] == 0, "global crop 1 blurred %d times", blur[0]);
    CHECKF(fabs(blur[1] / (double)ITERS - 0.9) < 0.03, "global 2 blur rate %.3f", blur[1] / (double)ITERS);
    CHECKF(fabs(blur[2] / (double)ITERS - 0.5) < 0.04 && fabs(blur[3] / (double)ITERS - 0.5) < 0.04,
           "local blur rates %.3f %.3f", blur[2] / (double)ITERS, blur[3] / (double)ITERS);
    CHECKF(sol[0] == 0 && sol[2] == 0 && sol[3] == 0 && fabs(sol[1] / (double)ITERS - 0.2) < 0.03,
           "solarize counts %d %d %d %d", sol[0], sol[1], sol[2], sol[3]);
    CHECKF(fabs(flip / (4.0 * ITERS) - 0.5) < 0.02, "flip rate %.3f", flip / (4.0 * ITERS));
    CHECKF(fabs(jit / (4.0 * ITERS) - 0.8) < 0.02, "jitter rate %.3f", jit / (4.0 * ITERS));
    CHECKF(fabs(gray / (4.0 * ITERS) - 0.2) < 0.02, "grayscale rate %.3f", gray / (4.0 * ITERS));
    /* Mean area fraction: U(0.32, 1) -> 0.66 and U(0.05, 0.32) -> 0.185, give
     * or take the rejections and the rounding on a 40x30 image. */
    area_g /= 2.0 * ITERS;
    area_l /= 2.0 * ITERS;
    CHECKF(area_g > 0.55 && area_g < 0.75 && area_l > 0.14 && area_l < 0.23, "areas %.3f %.3f", area_g, area_l);
    dv2_augment_work_free(&w);
    dv2_image_free(&s);
}

/* Draws crops of a real image with every option likely, writes their
 * parameters (DIR/params.txt) and tensors (DIR/crop_N.f32) for
 * tests/ref/image_ref.py --check-augment to replay with torchvision. */
static int augment_dump(const char *dir, const char *image) {
    size_t n;
    uint8_t *b = read_all(image, &n);
    dv2_image src;
    dv2_image_init(&src);
    if (!b || dv2_image_decode(&src, b, n, NULL)) { fprintf(stderr, "cannot decode %s\n", image); return 1; }
    free(b);
    char path[4096];
    snprintf(path, sizeof path, "%s/params.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    dv2_augment_work w;
    dv2_augment_work_init(&w);
    dv2_rng r;
    dv2_rng_seed(&r, 99, 0);
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    for (int i = 0; i < 24; i++) {
        dv2_augment_params p;
        int size = i % 3 == 2 ? 96 : 224;
        dv2_augment_draw(&p, src.w, src.h, size, i % 2 ? 0.05 : 0.32, i % 2 ? 0.32 : 1.0, 0.6, 0.5, &r);
        if (dv2_augment_apply(out, &src, &p, &w, NULL)) return 1;
        fprintf(f, "%d %d %d %d %d %d %d %d %d %d %d %.9g %.9g %.9g %.17g %d %d %.9g %d\n", p.x, p.y, p.w, p.h,
                p.size, p.flip, p.jitter, p.order[0], p.order[1], p.order[2], p.order[3], (double)p.brightness,
                (double)p.contrast, (double)p.saturation, p.hue, p.gray, p.blur, (double)p.sigma, p.solarize);
        snprintf(path, sizeof path, "%s/crop_%d.f32", dir, i);
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(out, sizeof(float), (size_t)3 * size * size, o) != (size_t)3 * size * size) return 1;
        fclose(o);
    }
    free(out);
    dv2_augment_work_free(&w);
    dv2_image_free(&src);
    return fclose(f) ? 1 : 0;
}

/* ---- parity against tests/ref/image_ref.py ---- */

static int load_image(dv2_image *img, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n;
    uint8_t *b = read_all(path, &n);
    if (!b) { fprintf(stderr, "cannot read %s\n", path); return -1; }
    dv2_error err;
    int rc = dv2_image_decode(img, b, n, &err);
    if (rc) fprintf(stderr, "%s: %s\n", name, err.msg);
    free(b);
    return rc;
}

static int run_parity(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno)); return 1; }
    char line[1024];
    dv2_image img, out, tmp;
    dv2_image_init(&img);
    dv2_image_init(&out);
    dv2_image_init(&tmp);
    int ncases = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[32], file[512], ref[512], name[64];
        double p;
        int a1, a2, a3, a4, a5;
        if (sscanf(line, "%31s", kind) != 1) continue;
        ncases++;
        if (!strcmp(kind, "bad") && sscanf(line, "%*s %511s", file) == 1) {
            snprintf(path, sizeof path, "%s/%s", dir, file);
            size_t n;
            uint8_t *b = read_all(path, &n);
            dv2_error err;
            int rc = b ? dv2_image_decode(&img, b, n, &err) : -1;
            CHECKF(rc != 0, "%s: PIL refuses it, we decoded it", file);
            if (rc) fprintf(stderr, "bad %s: %s\n", file, err.msg);
            free(b);
            continue;
        }
        uint8_t *refb = NULL;
        size_t refn = 0;
        if (sscanf(line, "%*s %511s %511s", file, ref) == 2) {
            snprintf(path, sizeof path, "%s/%s", dir, ref);
            refb = read_all(path, &refn);
        }
        CHECKF(refb != NULL, "%s: no reference", line);
        if (!refb) continue;
        if (load_image(&img, dir, file)) { CHECKF(0, "%s: decode failed", file); free(refb); continue; }
        if (!strcmp(kind, "decode") && sscanf(line, "%*s %*s %*s %d %d", &a1, &a2) == 2) {
            CHECKF(img.w == a1 && img.h == a2 && refn == (size_t)a1 * a2 * 3, "%s: size %dx%d vs %dx%d", file,
                   img.w, img.h, a1, a2);
            if (img.w == a1 && img.h == a2 && refn == (size_t)a1 * a2 * 3) {
                size_t diff = 0;
                int maxd = 0;
                for (size_t i = 0; i < refn; i++) {
                    int d = abs((int)img.rgb[i] - refb[i]);
                    diff += d != 0;
                    if (d > maxd) maxd = d;
                }
                CHECKF(diff == 0, "decode %s: %zu samples differ (max %d)", file, diff, maxd);
            }
        } else if (!strcmp(kind, "eval") && sscanf(line, "%*s %*s %*s %d %d", &a1, &a2) == 2) {
            size_t n = (size_t)3 * a2 * a2;
            float *t = malloc(n * sizeof(float));
            dv2_error err;
            int rc = dv2_resize_eval_transform(t, &img, a1, a2, &tmp, &err);
            CHECKF(rc == 0 && refn == n * 4, "eval %s %d %d: rc %d", file, a1, a2, rc);
            if (rc == 0 && refn == n * 4) {
                char what[600];
                snprintf(what, sizeof what, "eval %s %d/%d", file, a1, a2);
                tu_close(what, t, (const float *)(void *)refb, (long)n, 1e-6, 0);
            }
            free(t);
        } else if (!strcmp(kind, "square") && sscanf(line, "%*s %*s %*s %d", &a1) == 1) {
            size_t n = (size_t)3 * a1 * a1;
            float *t = malloc(n * sizeof(float));
            dv2_error err;
            int rc = dv2_resize_square_transform(t, &img, a1, &tmp, &err);
            CHECKF(rc == 0 && refn == n * 4, "square %s %d: rc %d", file, a1, rc);
            if (rc == 0 && refn == n * 4) {
                char what[600];
                snprintf(what, sizeof what, "square %s %d", file, a1);
                tu_close(what, t, (const float *)(void *)refb, (long)n, 1e-6, 0);
            }
            free(t);
        } else {
            int ok = 0;
            int tol_level = 0;
            double tol_frac = 0;
            dv2_image *res = &img;
            if (!strcmp(kind, "bilin") && sscanf(line, "%*s %*s %*s %d %d", &a1, &a2) == 2) {
                ok = dv2_resize_bilinear(&out, &img, a1, a2, NULL) == 0;
                res = &out;
            } else if (!strcmp(kind, "rcrop") && sscanf(line, "%*s %*s %*s %d %d %d %d %d", &a1, &a2, &a3, &a4, &a5) == 5) {
                ok = dv2_resize_bicubic(&out, &img, a1, a2, a3, a4, a5, a5, NULL) == 0;
                res = &out;
            } else if (!strcmp(kind, "op") && sscanf(line, "%*s %*s %*s %63s %lf", name, &p) == 2) {
                ok = 1;
                if (!strcmp(name, "flip")) dv2_augment_flip(&img);
                else if (!strcmp(name, "gray")) dv2_augment_grayscale(&img);
                else if (!strcmp(name, "solarize")) dv2_augment_solarize(&img, (int)p);
                else if (!strcmp(name, "brightness")) dv2_augment_brightness(&img, (float)p);
                else if (!strcmp(name, "contrast")) dv2_augment_contrast(&img, (float)p);
                else if (!strcmp(name, "saturation")) dv2_augment_saturation(&img, (float)p);
                else if (!strcmp(name, "hue")) dv2_augment_hue(&img, p);
                else if (!strcmp(name, "blur")) {
                    ok = dv2_augment_gaussian_blur(&img, 9, (float)p, &tmp, NULL) == 0;
                    tol_level = 1;
                    tol_frac = 0.005;
                } else ok = 0;
            }
            CHECKF(ok, "case failed to run: %s", line);
            if (ok) {
                size_t n = (size_t)res->w * res->h * 3;
                CHECKF(refn == n, "%s: size mismatch", line);
                if (refn == n) {
                    size_t diff = 0;
                    int maxd = 0;
                    for (size_t i = 0; i < n; i++) {
                        int d = abs((int)res->rgb[i] - refb[i]);
                        diff += d != 0;
                        if (d > maxd) maxd = d;
                    }
                    CHECKF(maxd <= tol_level && diff <= tol_frac * n, "%s %s: %zu of %zu samples differ, max %d",
                           kind, ref, diff, n, maxd);
                    if (diff) fprintf(stderr, "note: %s %s: %zu of %zu samples differ by <= %d\n", kind, ref, diff, n, maxd);
                }
            }
        }
        free(refb);
    }
    fclose(f);
    CHECKF(ncases > 20, "only %d cases", ncases);
    fprintf(stderr, "%d parity cases\n", ncases);
    dv2_image_free(&img);
    dv2_image_free(&out);
    dv2_image_free(&tmp);
    return tu_finish("test_image --parity");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--parity")) return run_parity(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--augment-dump")) return augment_dump(argv[2], argv[3]);
    test_roundtrips();
    test_limits();
    test_png_corrupt();
    test_resize();
    test_augment();
    test_multicrop_stats();
    return tu_finish("test_image");
}
