/* memfile.h — the fuzz input as a file: a memfd holding the bytes and a
 * /proc/self/fd path to it, for readers that take a path. */
#ifndef DV2_FUZZ_MEMFILE_H
#define DV2_FUZZ_MEMFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfile(char *path, size_t pathsz, const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) abort();
        done += (size_t)k;
    }
    lseek(fd, 0, SEEK_SET);
    snprintf(path, pathsz, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
