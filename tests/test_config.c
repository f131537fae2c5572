/* test_config.c — the training config (lib/train/config.h): official defaults,
 * file parsing with comments and lists, overrides, every rejection naming
 * file:line, and the resolved writer reading back to the same struct. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/config.h"
#include "testutil.h"

static int parse(dv2_config *c, const char *text, dv2_error *err) {
    return dv2_config_parse(c, text, strlen(text), "t.cfg", err);
}

int main(void) {
    dv2_config c, d;
    dv2_error err = {0};
    dv2_config_defaults(&c);
    /* spec §1.1 defaults */
    CHECK(strcmp(c.student.arch, "vit_large") == 0 && c.student.patch_size == 16);
    CHECK(c.student.drop_path_rate == 0.3 && c.student.layerscale == 1e-5);
    CHECK(c.dino.head_n_prototypes == 65536 && c.dino.head_bottleneck_dim == 256);
    CHECK(c.ibot.mask_ratio_min_max[0] == 0.1 && c.ibot.mask_ratio_min_max[1] == 0.5);
    CHECK(c.train.OFFICIAL_EPOCH_LENGTH == 1250 && strcmp(c.train.centering, "centering") == 0);
    CHECK(c.teacher.momentum_teacher == 0.992 && c.optim.weight_decay_end == 0.4);
    CHECK(c.optim.base_lr == 0.004 && c.optim.layerwise_decay == 0.9 && c.optim.clip_grad == 3.0);
    CHECK(c.crops.global_crops_scale[0] == 0.32 && c.crops.local_crops_size == 96);
    CHECK(dv2_config_validate(&c, &err) == 0);
    CHECK(dv2_config_total_iters(&c) == 125000);
    /* README fast setup: 32 GPUs x 64 -> 0.004*sqrt(2) */
    CHECK(fabs(dv2_config_peak_lr(&c, 32) - 0.004 * sqrt(2.0)) < 1e-15);

    /* a file with comments, lists, quotes, booleans */
    const char *txt =
        "# vitl14-like\n"
        "student.arch = vit_large   # trailing comment\n"
        "student.patch_size=14\n"
        "student.ffn_layer = \"swiglufused\"\n"
        "\n"
        "  ibot.separate_head = true\n"
        "crops.global_crops_scale = [0.4, 1]\n"
        "train.seed = 1e3\n"
        "crops.local_crops_size = 98\n";
    CHECKF(parse(&c, txt, &err) == 0, "%s", err.msg);
    CHECK(c.student.patch_size == 14 && strcmp(c.student.ffn_layer, "swiglufused") == 0);
    CHECK(c.ibot.separate_head == 1 && c.crops.global_crops_scale[0] == 0.4);
    CHECK(c.train.seed == 1000);
    CHECKF(dv2_config_validate(&c, &err) == 0, "%s", err.msg);
    dv2_arch a;
    CHECK(dv2_config_arch(&c, &a, &err) == 0 && a.embed_dim == 1024 && a.ffn_hidden == 2736);

    /* rejections, each naming the line */
    struct { const char *text, *want; } bad[] = {
        {"student.arch = vit_large\nstudent.archh = vit_small\n", "t.cfg:2: unknown key 'student.archh'"},
        {"optim.base_lr = fast\n", "t.cfg:1: optim.base_lr: 'fast' is not a number"},
        {"optim.base_lr = -1\n", "t.cfg:1: optim.base_lr"},
        {"train.batch_size_per_gpu = 3.5\n", "not an integer"},
        {"train.batch_size_per_gpu = 0\n", "outside"},
        {"student.drop_path_uniform = maybe\n", "not true or false"},
        {"train.centering = none\n", "not one of centering|sinkhorn_knopp"},
        {"crops.local_crops_scale = [0.3, 0.1]\n", "ordered"},
        {"crops.local_crops_scale = 0.3\n", "expected a list"},
        {"crops.local_crops_scale = [0.1, 0.2, 0.3]\n", "two values"},
        {"\n\njust words\n", "t.cfg:3: expected 'key = value'"},
        {"dino.loss_weight = 1\ndino.loss_weight = 2\n", "t.cfg:2: key 'dino.loss_weight' set twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dv2_config_defaults(&d);
        int rc = parse(&d, bad[i].text, &err);
        CHECKF(rc == DV2_EINVAL && strstr(err.msg, bad[i].want), "case %zu: rc %d msg '%s'", i, rc, err.msg);
    }
    /* cross-key checks */
    dv2_config_defaults(&d);
    CHECK(dv2_config_override(&d, "crops.local_crops_size=98", &err) == 0);
    CHECK(dv2_config_validate(&d, &err) == DV2_EINVAL && strstr(err.msg, "local_crops_size"));
    dv2_config_defaults(&d);
    CHECK(dv2_config_override(&d, "student.arch = custom", &err) == 0);
    CHECK(dv2_config_validate(&d, &err) == DV2_EINVAL && strstr(err.msg, "embed_dim"));
    CHECK(dv2_config_override(&d, "student.embed_dim=96", &err) == 0);
    CHECK(dv2_config_override(&d, "student.depth=4", &err) == 0);
    CHECK(dv2_config_override(&d, "student.num_heads=3", &err) == 0);
    CHECKF(dv2_config_validate(&d, &err) == 0, "%s", err.msg);
    CHECK(dv2_config_override(&d, "nokey", &err) == DV2_EINVAL);
    CHECK(dv2_config_override(&d, "x.y=1", &err) == DV2_EINVAL && strstr(err.msg, "command line: unknown key"));

    /* resolved config round trip, including awkward reals */
    c.optim.base_lr = 0.1 + 0.2;
    c.teacher.momentum_teacher = 1.0 / 3.0;
    c.optim.epochs = 2;
    FILE *f = fopen("resolved.cfg", "w");
    CHECK(f && dv2_config_write(&c, f) == 0);
    fclose(f);
    dv2_config_defaults(&d);
    CHECKF(dv2_config_load(&d, "resolved.cfg", &err) == 0, "%s", err.msg);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK(dv2_config_load(&d, "missing.cfg", &err) != 0);

    /* the key table covers the listed keys */
    dv2_config_keyinfo ki;
    size_t n = 0;
    while (dv2_config_key(n, &ki) == 0) n++;
    CHECK(n > 60);
    /* the shipped recipes load, validate, and give the spec's derived numbers */
    const char *root = getenv("DV2_ROOT");
    if (root) {
        struct { const char *name; long long iters; double lr32x64; int dim, hidden; } rec[] = {
            {"vitl16_short", 125000, 0.004 * sqrt(2.0), 1024, 4096},
            {"vitl14", 625000, 2e-4 * sqrt(2.0), 1024, 2736},
            {"vitg14", 625000, 2e-4 * sqrt(3.0), 1536, 4096},
            {"vits14", 625000, 2e-4 * sqrt(2.0), 384, 1536},
            {"vitb14", 625000, 2e-4 * sqrt(2.0), 768, 3072},
            {"fmnist_tiny", 0, 0, 96, 384},
            {"vitg14_distill", 625000, 1e-3, 384, 1536}, /* dv2-distill: ViT-g -> ViT-S, lr 1e-3 at 2048 */
            {"fmnist_distill", 0, 0, 48, 192},
        };
        for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/configs/%s.cfg", root, rec[i].name);
            dv2_config_defaults(&d);
            int rc = dv2_config_load(&d, path, &err);
            if (!rc) rc = dv2_config_validate(&d, &err);
            CHECKF(rc == 0, "%s", err.msg);
            if (rc) continue;
            CHECK(dv2_config_arch(&d, &a, &err) == 0);
            CHECKF(a.embed_dim == rec[i].dim && a.ffn_hidden == rec[i].hidden, "%s", rec[i].name);
            if (rec[i].iters) {
                /* global batch 2048 (README setups), 3072 for ViT-g (256 GPUs x 12) */
                int W = (d.train.batch_size_per_gpu == 12 ? 3072 : 2048) / d.train.batch_size_per_gpu;
                CHECKF(dv2_config_total_iters(&d) == rec[i].iters, "%s", rec[i].name);
                CHECKF(fabs(dv2_config_peak_lr(&d, W) - rec[i].lr32x64) < 1e-12, "%s", rec[i].name);
            }
        }
    }
    return tu_finish("test_config");
}
