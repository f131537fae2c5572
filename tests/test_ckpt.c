/* test_ckpt.c — checkpoint files (lib/train/ckpt.h): write/read round trip with
 * metadata, keeping the newest K, detection of a flipped data byte by the
 * checksum, fallback to the previous checkpoint, truncated files refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/ckpt.h"
#include "testutil.h"

static void flip_byte(const char *path, long from_end) {
    FILE *f = fopen(path, "r+b");
    fseek(f, -from_end, SEEK_END);
    int c = fgetc(f);
    fseek(f, -from_end, SEEK_END);
    fputc(c ^ 0x10, f);
    fclose(f);
}

int main(void) {
    dv2_error err = {0};
    float a[100], b[7];
    for (int i = 0; i < 100; i++) a[i] = (float)i * 0.5f;
    for (int i = 0; i < 7; i++) b[i] = -1.0f / (i + 1);
    dv2_safetensors_entry t[2] = {{"student.backbone.x", a, 2, {10, 10}}, {"center", b, 1, {7}}};
    const char *mk[] = {"rng", "sampler_pass"}, *mv[2];
    char rngbuf[32];
    for (int s = 1; s <= 4; s++) {
        snprintf(rngbuf, sizeof rngbuf, "%d", s * 1000);
        mv[0] = rngbuf, mv[1] = "3";
        a[0] = (float)s;
        CHECKF(dv2_ckpt_write(".", s * 10, t, 2, mk, mv, 2, 2, &err) == 0, "%s", err.msg);
    }
    int64_t steps[8];
    CHECK(dv2_ckpt_list(".", steps, 8) == 2 && steps[0] == 40 && steps[1] == 30);
    CHECK(dv2_ckpt_list("missing-dir", steps, 8) == 0);

    dv2_safetensors_file *f;
    int64_t step;
    int skipped;
    CHECKF(dv2_ckpt_open_latest(&f, ".", &step, &skipped, &err) == 0, "%s", err.msg);
    CHECK(step == 40 && skipped == 0);
    uint64_t u;
    CHECK(dv2_ckpt_meta_u64(f, "rng", &u, &err) == 0 && u == 4000);
    CHECK(dv2_ckpt_meta_u64(f, "step", &u, &err) == 0 && u == 40);
    CHECK(dv2_ckpt_meta_u64(f, "nothing", &u, &err) == DV2_ECORRUPT);
    float back[100];
    int64_t shape[2] = {10, 10};
    CHECK(dv2_safetensors_load(f, "student.backbone.x", shape, 2, back, &err) == 0);
    CHECK(back[0] == 4.0f && back[99] == 49.5f);
    dv2_safetensors_close(f);

    /* flip one data byte of the newest: checksum catches it, fallback to 30 */
    char path[256];
    dv2_ckpt_path(path, sizeof path, ".", 40);
    flip_byte(path, 3);
    CHECK(dv2_ckpt_open(&f, path, &err) == DV2_ECORRUPT && strstr(err.msg, "checksum"));
    CHECK(dv2_ckpt_open_latest(&f, ".", &step, &skipped, &err) == 0 && step == 30 && skipped == 1);
    dv2_safetensors_close(f);
    /* truncate 30 as well: nothing left */
    dv2_ckpt_path(path, sizeof path, ".", 30);
    FILE *g = fopen(path, "r+b");
    fseek(g, 0, SEEK_END);
    long sz = ftell(g);
    fclose(g);
    CHECK(truncate(path, sz - 20) == 0);
    CHECK(dv2_ckpt_open_latest(&f, ".", &step, &skipped, &err) == DV2_ENOTFOUND && skipped == 2);
    CHECK(strstr(err.msg, "all damaged") != NULL);
    return tu_finish("test_ckpt");
}
