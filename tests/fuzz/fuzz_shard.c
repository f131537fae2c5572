/* fuzz_shard.c — libFuzzer target for the shard reader: the input bytes are
 * read as a shard front to back (as from a pipe), by random access through
 * the trailing index (as a file), and as a single record frame.  Any crash,
 * sanitizer report, leak or hang is a bug; errors are the expected outcome. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "format/shard.h"
#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    dv2_record rec;
    volatile size_t sink = 0;
    char path[64];
    int fd = memfile(path, sizeof path, data, size); /* the descriptor is what is read here */
    /* sequential: a prefix of 0 bytes makes the reader treat fd as a file
     * (seekable); pass one byte as prefix to force the stream path too */
    for (int mode = 0; mode < 2; mode++) {
        dv2_shard_reader *r = NULL;
        lseek(fd, mode ? (size ? 1 : 0) : 0, SEEK_SET);
        int rc = dv2_shard_open_fd(&r, fd, "fuzz", mode ? data : NULL, mode && size ? 1 : 0, &err);
        if (rc == 0) {
            int n = 0;
            while ((rc = dv2_shard_next(r, &rec, &err)) == 1 && n++ < 100000)
                sink += rec.size + strlen(rec.key) + (rec.meta ? strlen(rec.meta) : 0);
            if (!mode && dv2_shard_load_index(r, &err) == 0) {
                dv2_recbuf b;
                dv2_recbuf_init(&b);
                for (uint64_t i = 0; i < dv2_shard_count(r) && i < 1000; i++)
                    if (dv2_shard_get(r, i, &rec, &b, &err) == 0) sink += rec.size + rec.data[0 * rec.size];
                dv2_recbuf_free(&b);
            }
        }
        dv2_shard_close(r);
    }
    close(fd);
    dv2_recbuf b;
    dv2_recbuf_init(&b);
    if (dv2_shard_decode_frame(data, size, &rec, &b, "frame", &err) == 0) sink += rec.size;
    dv2_recbuf_free(&b);
    (void)sink;
    return 0;
}
