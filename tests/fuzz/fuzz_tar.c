/* fuzz_tar.c — libFuzzer target for the streaming tar reader (WebDataset
 * input of dv2-pack): the input bytes are read member by member from a
 * memory file, half of them passed in as already-read prefix bytes as when
 * dv2-pack sniffs a stream.  Errors are expected; crashes, sanitizer
 * reports, leaks and hangs are bugs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "format/tarread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("tar", 0);
    if (fd < 0) abort();
    size_t pre = size < 512 ? size / 2 : 512;
    if (size > pre && write(fd, data + pre, size - pre) != (ssize_t)(size - pre)) abort();
    lseek(fd, 0, SEEK_SET);
    dv2_error err;
    dv2_tar *t = NULL;
    volatile size_t sink = 0;
    if (dv2_tar_open_fd(&t, fd, "fuzz", data, pre, &err) == 0) {
        const char *path;
        const uint8_t *d;
        size_t n;
        int k = 0;
        while (dv2_tar_next(t, &path, &d, &n, &err) == 1 && k++ < 10000) sink += strlen(path) + n + (n ? d[n - 1] : 0);
    }
    dv2_tar_close(t);
    close(fd);
    (void)sink;
    return 0;
}
