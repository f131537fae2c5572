/* test_safetensors.c — lib/format/safetensors.h and lib/model/arch.h:
 *   - round trip of F32 tensors (scalar, empty, escaped names) and metadata;
 *   - a file written here is read by a small json+numpy reader in Python, and
 *     a file written by numpy + struct (F32, F16, BF16, metadata) is read here;
 *   - corrupt inputs (every truncation, bad header length, bad JSON, bad
 *     fields, offsets out of range, overlaps, shape overflow) are refused
 *     with a message naming the file, never a crash; random header damage;
 *   - architecture: metadata round trip, inference from shapes with chunked
 *     and prefixed names, presets and the SwiGLU hidden rule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/arch.h"
#include "core/rng.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "testutil.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return NULL; }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static float A[6] = {1, -2, 3.5f, 1e-20f, -0.0f, 65504};
static float S[1] = {42};

static void write_sample(const char *path) {
    dv2_safetensors_entry t[4] = {
        {"weight \"q\"\\x", A, 2, {2, 3}},
        {"scalar", S, 0, {0}},
        {"empty", A, 2, {0, 5}},
        {"blocks.0.mlp.fc1.bias", A + 1, 1, {5}},
    };
    const char *mk[] = {"arch", "note"}, *mv[] = {"vit_small", "line\nbreak \"quoted\""};
    dv2_error err;
    int rc = dv2_safetensors_write(path, 1, t, 4, mk, mv, 2, &err);
    CHECKF(rc == 0, "write: %s", err.msg);
}

static void test_roundtrip(void) {
    dv2_error err;
    write_sample("a.safetensors");
    dv2_safetensors_file *f;
    CHECKF(dv2_safetensors_open(&f, "a.safetensors", &err) == 0, "%s", err.msg);
    if (!f) return;
    CHECK(dv2_safetensors_count(f) == 4);
    const dv2_safetensors_tensor *t = dv2_safetensors_find(f, "weight \"q\"\\x");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->dtype == DV2_ST_F32 && t->numel == 6);
    float buf[8];
    CHECK(t && dv2_safetensors_read_f32(f, t, buf, 6, NULL) == 0 && memcmp(buf, A, sizeof A) == 0);
    CHECK(t && dv2_safetensors_read_f32(f, t, buf, 5, &err) == DV2_EINVAL);
    t = dv2_safetensors_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && dv2_safetensors_read_f32(f, t, buf, 1, NULL) == 0 && buf[0] == 42);
    t = dv2_safetensors_find(f, "empty");
    CHECK(t && t->numel == 0 && t->begin == t->end);
    int64_t shp[1] = {5}, wrong[1] = {4};
    CHECK(dv2_safetensors_load(f, "blocks.0.mlp.fc1.bias", shp, 1, buf, NULL) == 0 && memcmp(buf, A + 1, 5 * 4) == 0);
    CHECK(dv2_safetensors_load(f, "blocks.0.mlp.fc1.bias", wrong, 1, buf, &err) == DV2_ECORRUPT &&
          strstr(err.msg, "[5]") && strstr(err.msg, "[4]"));
    CHECK(dv2_safetensors_load(f, "nope", shp, 1, buf, &err) == DV2_ENOTFOUND && strstr(err.msg, "nope"));
    CHECK(dv2_safetensors_meta_count(f) == 2);
    CHECK(dv2_safetensors_meta(f, "note") && strcmp(dv2_safetensors_meta(f, "note"), "line\nbreak \"quoted\"") == 0);
    CHECK(dv2_safetensors_meta(f, "absent") == NULL);
    dv2_safetensors_close(f);
    /* header padded to 8 bytes */
    size_t n;
    char *b = slurp("a.safetensors", &n);
    CHECK(b && (*(uint64_t *)b) % 8 == 0);
    free(b);
    /* no overwrite without force; duplicate names refused */
    dv2_safetensors_entry e[2] = {{"x", A, 1, {1}}, {"x", A, 1, {1}}};
    CHECK(dv2_safetensors_write("a.safetensors", 0, e, 1, NULL, NULL, 0, &err) == DV2_EEXIST);
    CHECK(dv2_safetensors_write("b.safetensors", 0, e, 2, NULL, NULL, 0, &err) == DV2_EINVAL);
    const char *dk[] = {"k", "k"};
    CHECK(dv2_safetensors_write("b.safetensors", 0, e, 1, dk, dk, 2, &err) == DV2_EINVAL);
    CHECK(dv2_safetensors_open(&f, "missing.safetensors", &err) == DV2_EIO && strstr(err.msg, "missing.safetensors"));
}

/* Python: read our file with json + numpy; write one with F32/F16/BF16. */
static int test_python(void) {
    const char *py =
        "import json, struct, sys\n"
        "import numpy as np\n"
        "def read(p):\n"
        "    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]\n"
        "    out = {}\n"
        "    for k, v in h.items():\n"
        "        if k == '__metadata__': continue\n"
        "        s, e = v['data_offsets']; assert v['dtype'] == 'F32'\n"
        "        out[k] = np.frombuffer(d[s:e], '<f4').reshape(v['shape'])\n"
        "    return h.get('__metadata__', {}), out\n"
        "meta, t = read('a.safetensors')\n"
        "assert meta['arch'] == 'vit_small' and meta['note'] == 'line\\nbreak \"quoted\"', meta\n"
        "assert t['weight \"q\"\\\\x'].tolist() == [[1, -2, 3.5], [np.float32(1e-20), -0.0, 65504]]\n"
        "assert t['scalar'].shape == () and t['scalar'] == 42 and t['empty'].shape == (0, 5)\n"
        "rng = np.random.default_rng(3)\n"
        "x = rng.normal(0, 3, (4, 7)).astype(np.float32)\n"
        "x16 = x.astype(np.float16)\n"
        "u = x.view(np.uint32).astype(np.uint64)\n"
        "bf = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)\n"
        "bf32 = (bf.astype(np.uint32) << 16).view(np.float32)\n"
        "sub = np.array([6e-8, -3e-5, 65504, np.inf], np.float16)\n"
        "ts = [('x_f32', 'F32', x), ('x_f16', 'F16', x16), ('x_bf16', 'BF16', bf), ('want_f16', 'F32', x16.astype(np.float32)),\n"
        "      ('want_bf16', 'F32', bf32), ('sub_f16', 'F16', sub), ('want_sub', 'F32', sub.astype(np.float32)),\n"
        "      ('x_f64', 'F64', x.astype(np.float64)), ('ids', 'I64', np.arange(3, dtype=np.int64))]\n"
        "h = {'__metadata__': {'format': 'pt'}}; data = b''\n"
        "for name, dt, a in ts:\n"
        "    raw = np.ascontiguousarray(a).tobytes()\n"
        "    h[name] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [len(data), len(data) + len(raw)]}; data += raw\n"
        "hb = json.dumps(h).encode()\n"
        "open('py.safetensors', 'wb').write(struct.pack('<Q', len(hb)) + hb + data)\n";
    spit("check.py", py, strlen(py));
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) return 0;
    CHECKF(system("/usr/bin/python3 check.py") == 0, "python could not read our file (or write its own)");
    dv2_safetensors_file *f;
    dv2_error err;
    CHECKF(dv2_safetensors_open(&f, "py.safetensors", &err) == 0, "%s", err.msg);
    if (!f) return 1;
    float got[28], want[28];
    const char *pairs[][2] = {{"x_f16", "want_f16"}, {"x_bf16", "want_bf16"}, {"sub_f16", "want_sub"}, {"x_f64", "x_f32"}};
    for (int i = 0; i < 4; i++) {
        const dv2_safetensors_tensor *a = dv2_safetensors_find(f, pairs[i][0]), *b = dv2_safetensors_find(f, pairs[i][1]);
        CHECK(a && b && a->numel == b->numel);
        if (!a || !b) continue;
        CHECK(dv2_safetensors_read_f32(f, a, got, a->numel, NULL) == 0);
        CHECK(dv2_safetensors_read_f32(f, b, want, b->numel, NULL) == 0);
        CHECKF(memcmp(got, want, a->numel * 4) == 0, "%s differs from %s", pairs[i][0], pairs[i][1]);
    }
    CHECK(dv2_safetensors_find(f, "x_bf16")->dtype == DV2_ST_BF16 && dv2_safetensors_find(f, "x_f16")->dtype == DV2_ST_F16);
    const dv2_safetensors_tensor *ids = dv2_safetensors_find(f, "ids");
    CHECK(ids && ids->dtype == DV2_ST_I64 && dv2_safetensors_read_f32(f, ids, got, 3, &err) == DV2_EUNSUPPORTED);
    CHECK(strcmp(dv2_safetensors_meta(f, "format"), "pt") == 0);
    dv2_safetensors_close(f);
    return 1;
}

/* A header + data from text; returns the open status and leaves the message. */
static int open_text(const char *json, size_t data_bytes, dv2_error *err) {
    size_t hl = strlen(json), n = 8 + hl + data_bytes;
    unsigned char *b = calloc(1, n + 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(b + 8, json, hl);
    dv2_safetensors_file *f;
    dv2_error_clear(err);
    int rc = dv2_safetensors_open_mem(&f, b, n, "t.safetensors", err);
    dv2_safetensors_close(f);
    free(b);
    return rc;
}

static void test_corrupt(void) {
    dv2_error err;
    struct { const char *json; size_t data; const char *msg; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "unknown field"},
        {"{\"a\":[1]}", 0, "not an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
        {"{\"__metadata__\":[]}", 0, "not an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dimensions"},
        {"[]", 0, "start with"},
        {"{} x", 0, "trailing"},
        {"{\"a\":1,}", 0, "json"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "empty name"},
        {"{}        ", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = open_text(cases[i].json, cases[i].data, &err);
        if (!cases[i].msg) { CHECKF(rc == 0, "case %zu refused: %s", i, err.msg); continue; }
        CHECKF(rc == DV2_ECORRUPT && strstr(err.msg, "t.safetensors") && strstr(err.msg, cases[i].msg),
               "case %zu: rc %d, message '%s' (wanted '%s')", i, rc, err.msg, cases[i].msg);
    }
    /* header length beyond the file and beyond the limit */
    unsigned char hb[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    dv2_safetensors_file *f;
    CHECK(dv2_safetensors_open_mem(&f, hb, 10, "h", &err) == DV2_ECORRUPT && strstr(err.msg, "limit"));
    hb[0] = 100; hb[1] = hb[2] = hb[3] = 0;
    CHECK(dv2_safetensors_open_mem(&f, hb, 10, "h", &err) == DV2_ECORRUPT && strstr(err.msg, "truncated"));
    CHECK(dv2_safetensors_open_mem(&f, hb, 5, "h", &err) == DV2_ECORRUPT && strstr(err.msg, "too short"));
    /* every truncation of a real file is refused; the whole file is not */
    size_t n;
    char *b = slurp("a.safetensors", &n);
    if (!b) { CHECK(0); return; }
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        spit("trunc.safetensors", b, k);
        int rc = dv2_safetensors_open(&f, "trunc.safetensors", &err);
        dv2_safetensors_close(f);
        refused += rc < 0;
    }
    /* the last tensor ends at the end of the file, so every cut is detected */
    CHECKF(refused == (int)n, "%d of %zu truncations refused", refused, n);
    CHECK(dv2_safetensors_open_mem(&f, b, n, "whole", &err) == 0);
    dv2_safetensors_close(f);
    /* random damage in the header: never a crash, tensors stay in bounds */
    dv2_rng r;
    dv2_rng_seed(&r, 77, 0);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = hl << 8 | (unsigned char)b[k];
    char *c = malloc(n);
    int opened = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(c, b, n);
        int flips = 1 + (int)dv2_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)dv2_rng_below(&r, 8 + hl);
            c[pos] = (char)dv2_rng_below(&r, 256);
        }
        if (dv2_safetensors_open_mem(&f, c, n, "fuzz", NULL) == 0) {
            opened++;
            float tmp[64];
            for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
                const dv2_safetensors_tensor *t = dv2_safetensors_at(f, i);
                CHECK(t->end <= n && t->end - t->begin == t->numel * dv2_safetensors_dtype_size(t->dtype));
                if (t->numel <= 64) dv2_safetensors_read_f32(f, t, tmp, t->numel, NULL);
            }
            dv2_safetensors_close(f);
        }
    }
    CHECK(opened < 3000);
    free(b);
    free(c);
}

/* Shapes of a small backbone; data are zeros. */
static void test_arch(void) {
    CHECK(dv2_arch_swiglu_hidden(4 * 1536) == 4096 && dv2_arch_swiglu_hidden(4 * 1024) == 2736);
    CHECK(dv2_arch_swiglu_hidden(4 * 768) == 2048 && dv2_arch_swiglu_hidden(4 * 384) == 1024);
    dv2_arch a, b;
    CHECK(dv2_arch_preset(&a, "vit_giant2", NULL) == 0 && a.ffn_kind == DV2_FFN_SWIGLU && a.ffn_hidden == 4096 &&
          a.num_heads == 24 && a.depth == 40);
    CHECK(dv2_arch_preset(&a, "vit_tiny", NULL) == DV2_EINVAL);
    dv2_error err;
    /* D = 128 (2 heads), depth 3 in 2 chunks, patch 7, img 28 (4x4), 4 registers, SwiGLU */
    static float z[1 << 17]; /* the largest tensor below is 688 x 128 */
    const int D = 128, h2 = 2 * dv2_arch_swiglu_hidden(4 * 128);
    dv2_safetensors_entry e[] = {
        {"teacher.backbone.cls_token", z, 3, {1, 1, D}},
        {"teacher.backbone.pos_embed", z, 3, {1, 17, D}},
        {"teacher.backbone.register_tokens", z, 3, {1, 4, D}},
        {"teacher.backbone.patch_embed.proj.weight", z, 4, {D, 3, 7, 7}},
        {"teacher.backbone.blocks.0.0.attn.qkv.bias", z, 1, {3 * D}},
        {"teacher.backbone.blocks.0.0.mlp.w12.weight", z, 2, {h2, D}},
        {"teacher.backbone.blocks.0.0.mlp.w12.bias", z, 1, {h2}},
        {"teacher.backbone.blocks.0.1.norm1.weight", z, 1, {D}},
        {"teacher.backbone.blocks.1.2.norm1.weight", z, 1, {D}},
        {"teacher.dino_head.blocks.9.x", z, 1, {D}},
    };
    size_t ne = sizeof e / sizeof e[0];
    CHECK(dv2_safetensors_write("arch.safetensors", 1, e, ne, NULL, NULL, 0, &err) == 0);
    dv2_safetensors_file *f;
    CHECK(dv2_safetensors_open(&f, "arch.safetensors", &err) == 0);
    if (!f) return;
    CHECKF(dv2_weights_arch(f, &a, &err) == 0, "%s", err.msg);
    CHECK(a.embed_dim == D && a.depth == 3 && a.num_heads == 2 && a.patch_size == 7 && a.img_size == 28);
    CHECK(a.num_register_tokens == 4 && a.interpolate_antialias == 1 && a.interpolate_offset == 0.0f);
    CHECK(a.ffn_kind == DV2_FFN_SWIGLU && a.ffn_hidden == h2 / 2 && a.qkv_bias == 1 && a.proj_bias == 0 && a.ffn_bias == 1);
    CHECK(a.block_chunks == 2 && strcmp(a.name, "custom") == 0);
    dv2_safetensors_close(f);

    /* metadata written by write_arch wins and round-trips; shapes must agree */
    CHECK(dv2_weights_write("arch2.safetensors", 1, e, ne, &a, NULL, NULL, 0, &err) == 0);
    CHECK(dv2_safetensors_open(&f, "arch2.safetensors", &err) == 0);
    CHECK(dv2_weights_arch(f, &b, &err) == 0 && memcmp(&a, &b, sizeof a) == 0);
    CHECK(strcmp(dv2_safetensors_meta(f, "format"), "dv2") == 0);
    dv2_safetensors_close(f);
    b = a;
    b.depth = 5;
    CHECK(dv2_weights_write("arch3.safetensors", 1, e, ne, &b, NULL, NULL, 0, &err) == 0);
    CHECK(dv2_safetensors_open(&f, "arch3.safetensors", &err) == 0);
    CHECK(dv2_weights_arch(f, &b, &err) == DV2_ECORRUPT && strstr(err.msg, "depth"));
    dv2_safetensors_close(f);
    /* without metadata a dim that is not a multiple of 64 cannot give heads */
    dv2_safetensors_entry small[] = {{"cls_token", z, 3, {1, 1, 32}}, {"blocks.0.norm1.weight", z, 1, {32}}};
    CHECK(dv2_safetensors_write("s.safetensors", 1, small, 2, NULL, NULL, 0, &err) == 0);
    CHECK(dv2_safetensors_open(&f, "s.safetensors", &err) == 0);
    CHECK(dv2_weights_arch(f, &b, &err) == DV2_ECORRUPT && strstr(err.msg, "num_heads"));
    dv2_safetensors_close(f);
    /* metadata key/value */
    CHECK(dv2_arch_set_kv(&b, "depth", "x", &err) == DV2_EINVAL && dv2_arch_set_kv(&b, "other", "1", NULL) == 0);

    char out[256];
    CHECK(dv2_weights_canonical_name(out, sizeof out, "module.backbone.blocks.1.6.attn.qkv.weight") == 1 &&
          strcmp(out, "blocks.6.attn.qkv.weight") == 0);
    CHECK(dv2_weights_canonical_name(out, sizeof out, "blocks.6.attn.qkv.weight") == 1 &&
          strcmp(out, "blocks.6.attn.qkv.weight") == 0);
    CHECK(dv2_weights_canonical_name(out, sizeof out, "teacher.dino_head.mlp.0.weight") == 0);
    CHECK(dv2_weights_canonical_name(out, sizeof out, "student.backbone.norm.weight") == 1 && !strcmp(out, "norm.weight"));
    CHECK(dv2_weights_canonical_name(out, 4, "cls_token") == DV2_EINVAL);
}

int main(void) {
    test_roundtrip();
    int py = test_python();
    test_corrupt();
    test_arch();
    if (!py) fprintf(stderr, "note: /usr/bin/python3 with numpy not found, Python interop not checked\n");
    return tu_finish("test_safetensors");
}
