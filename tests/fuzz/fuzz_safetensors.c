/* fuzz_safetensors.c — libFuzzer target for the safetensors reader and the
 * JSON parser under it: the input bytes are opened as a safetensors file
 * from memory, every tensor that opened is converted to float32 (within a
 * size cap), the architecture is inferred, and the bytes after the first
 * eight are also parsed as JSON alone.  Errors are the expected outcome; any
 * crash, sanitizer report, leak or hang is a bug.
 * Build: clang-14 -fsanitize=fuzzer,address,undefined -I../../lib with
 * ../../lib/{safetensors,safetensors_arch,json,arch,afile,dv2}.c -lm */
#include <stdint.h>
#include <stdlib.h>

#include "core/json.h"
#include "format/safetensors.h"
#include "model/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    dv2_safetensors_file *f = NULL;
    if (dv2_safetensors_open_mem(&f, data, size, "fuzz", &err) == 0) {
        for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
            const dv2_safetensors_tensor *t = dv2_safetensors_at(f, i);
            if (t->numel > (1u << 20)) continue;
            float *buf = malloc((t->numel ? t->numel : 1) * sizeof *buf);
            if (buf) dv2_safetensors_read_f32(f, t, buf, t->numel, &err);
            free(buf);
        }
        dv2_arch a;
        dv2_weights_arch(f, &a, &err);
        for (size_t i = 0; i < dv2_safetensors_meta_count(f); i++)
            (void)dv2_safetensors_meta(f, dv2_safetensors_meta_key(f, i));
        dv2_safetensors_close(f);
    }
    if (size > 8) {
        dv2_json_doc *d = NULL;
        if (dv2_json_parse(&d, (const char *)data + 8, size - 8, 0, &err) == 0) {
            const dv2_json *r = dv2_json_root(d);
            for (size_t i = 0; i < dv2_json_len(r); i++) (void)dv2_json_at(r, i);
            dv2_json_free(d);
        }
    }
    return 0;
}
