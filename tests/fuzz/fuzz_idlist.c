/* fuzz_idlist.c — libFuzzer target for the id-list reader: the input is a
 * file of id lines read, sorted and searched, and every line is also parsed
 * as one id.  Errors are the expected outcome; any crash, sanitizer report,
 * leak or hang is a bug. */
#include <stdint.h>
#include <unistd.h>

#include "format/idlist.h"
#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    char path[64];
    volatile size_t sink = 0;
    int fd = memfile(path, sizeof path, data, size);
    dv2_idlist l;
    if (dv2_idlist_read(&l, path, &err) == 0) {
        sink += dv2_idlist_sort_unique(&l);
        for (size_t i = 0; i < l.n; i++) sink += (size_t)dv2_idlist_contains(&l, l.ids[i] + 1);
        for (size_t i = 1; i < l.n; i++)
            if (l.ids[i - 1] >= l.ids[i]) __builtin_trap();
        dv2_idlist_free(&l);
    }
    close(fd);
    uint64_t id;
    if (dv2_idlist_parse_id((const char *)data, size, &id) == 0) sink += (size_t)id;
    (void)sink;
    return 0;
}
