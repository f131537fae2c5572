/* tarread.c — a streaming tar reader: 512-byte headers with their checksum
 * verified, octal sizes bounded before allocation, pax extended headers
 * ("path=") and GNU long names ('L') applied to the next member, everything
 * that is not a regular file skipped.  A gzip-compressed archive (.tar.gz,
 * .tgz; concatenated gzip members too) is inflated as it is read. */
#include "format/tarread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/afile.h"

enum { ZIN = 1 << 16 };

struct dv2_tar {
    int fd;
    char *name;
    uint8_t pre[512];
    size_t npre, ppre;
    uint64_t off;
    uint8_t *data;
    size_t cap;
    char path[4096 + 256];
    char longname[4096];
    int have_long;
    int gz, gz_bad, gz_end; /* gzip: on, damaged, input exhausted */
    z_stream zs;
    uint8_t *zin;
};

/* Bytes of the file as stored: the prefix first, then fd. */
static long raw_read(dv2_tar *t, void *dst, size_t n) {
    size_t done = 0;
    while (done < n && t->ppre < t->npre) ((uint8_t *)dst)[done++] = t->pre[t->ppre++];
    if (done < n) {
        long k = dv2_read_full(t->fd, (uint8_t *)dst + done, n - done);
        if (k < 0) return -1;
        done += (size_t)k;
    }
    return (long)done;
}

/* Bytes of the tar stream (inflated if gzip); -1 on a read error, -2 on
 * damaged gzip data. */
static long tread(dv2_tar *t, void *dst, size_t n) {
    if (!t->gz) {
        long k = raw_read(t, dst, n);
        if (k > 0) t->off += (uint64_t)k;
        return k;
    }
    if (t->gz_bad) return -2;
    t->zs.next_out = dst;
    t->zs.avail_out = (uInt)n;
    while (t->zs.avail_out > 0 && !t->gz_end) {
        if (t->zs.avail_in == 0) {
            long k = raw_read(t, t->zin, ZIN);
            if (k < 0) return -1;
            if (k == 0) { t->gz_end = 1; break; }
            t->zs.next_in = t->zin;
            t->zs.avail_in = (uInt)k;
        }
        int r = inflate(&t->zs, Z_NO_FLUSH);
        if (r == Z_STREAM_END) { /* another gzip member may follow */
            if (t->zs.avail_in == 0) {
                long k = raw_read(t, t->zin, ZIN);
                if (k < 0) return -1;
                if (k == 0) { t->gz_end = 1; break; }
                t->zs.next_in = t->zin;
                t->zs.avail_in = (uInt)k;
            }
            if (inflateReset(&t->zs) != Z_OK) { t->gz_bad = 1; return -2; }
        } else if (r != Z_OK && !(r == Z_BUF_ERROR && t->zs.avail_in == 0)) {
            t->gz_bad = 1;
            return -2;
        }
    }
    size_t done = n - t->zs.avail_out;
    t->off += done;
    return (long)done;
}

static int tread_exact(dv2_tar *t, void *dst, size_t n, dv2_error *err) {
    uint64_t at = t->off;
    long k = tread(t, dst, n);
    if (k == -2) return dv2_error_set(err, DV2_ECORRUPT, "%s: damaged gzip data near offset %llu", t->name,
                                      (unsigned long long)at);
    if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read error at offset %llu", t->name,
                                      (unsigned long long)at);
    if ((size_t)k != n)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated at offset %llu", t->name,
                             (unsigned long long)(at + (uint64_t)k));
    return 0;
}

int dv2_tar_open_fd(dv2_tar **out, int fd, const char *name, const void *prefix, size_t nprefix,
                    dv2_error *err) {
    dv2_tar *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    }
    t->fd = fd;
    if (nprefix > sizeof t->pre) nprefix = sizeof t->pre;
    if (nprefix) memcpy(t->pre, prefix, nprefix); /* prefix may be NULL when empty */
    t->npre = nprefix;
    if (nprefix == 0) { /* look at the first bytes for the gzip magic */
        long k = dv2_read_full(fd, t->pre, sizeof t->pre);
        if (k < 0) {
            int e = errno;
            dv2_tar_close(t);
            return dv2_error_errno(err, DV2_EIO, e, "%s: read error", name);
        }
        t->npre = (size_t)k;
    }
    if (t->npre >= 2 && t->pre[0] == 0x1f && t->pre[1] == 0x8b) {
        t->gz = 1;
        if (!(t->zin = malloc(ZIN)) || inflateInit2(&t->zs, 16 + MAX_WBITS) != Z_OK) {
            free(t->zin);
            t->zin = NULL;
            t->gz = 0;
            dv2_tar_close(t);
            return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", name);
        }
    }
    *out = t;
    return 0;
}

int dv2_tar_sniff(const uint8_t *b, size_t n) {
    if (n >= 512 && dv2_tar_is_header(b)) return 1;
    if (n < 2 || b[0] != 0x1f || b[1] != 0x8b) return 0;
    uint8_t h[512];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return 0;
    zs.next_in = (Bytef *)b;
    zs.avail_in = (uInt)n;
    zs.next_out = h;
    zs.avail_out = sizeof h;
    int r = inflate(&zs, Z_SYNC_FLUSH);
    int full = zs.avail_out == 0 && (r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR);
    inflateEnd(&zs);
    return full && dv2_tar_is_header(h);
}

void dv2_tar_close(dv2_tar *t) {
    if (!t) return;
    if (t->gz) inflateEnd(&t->zs);
    free(t->zin);
    free(t->data);
    free(t->name);
    free(t);
}

static int octal(const uint8_t *p, size_t n, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ') i++;
    int digits = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    for (; i < n; i++)
        if (p[i] != 0 && p[i] != ' ') return -1;
    *out = v;
    return 0;
}

int dv2_tar_is_header(const uint8_t *b) {
    uint64_t want;
    if (memcmp(b + 257, "ustar", 5) != 0 || octal(b + 148, 8, &want) < 0) return 0;
    uint64_t sum = 0;
    for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : b[i];
    return sum == want;
}

/* Applies the "path" record of a pax extended header. */
static void pax_path(dv2_tar *t, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t len = 0, j = i;
        while (j < n && p[j] >= '0' && p[j] <= '9' && len < n) len = len * 10 + (size_t)(p[j++] - '0');
        if (j >= n || p[j] != ' ' || len == 0 || len > n - i) return;
        const char *kv = (const char *)p + j + 1;
        size_t kvlen = len - (j + 1 - i);
        if (kvlen > 5 && memcmp(kv, "path=", 5) == 0 && kvlen - 6 < sizeof t->longname) {
            memcpy(t->longname, kv + 5, kvlen - 6); /* drop the trailing newline */
            t->longname[kvlen - 6] = 0;
            t->have_long = 1;
        }
        i += len;
    }
}

int dv2_tar_next(dv2_tar *t, const char **path, const uint8_t **data, size_t *size, dv2_error *err) {
    for (;;) {
        uint8_t h[512];
        uint64_t at = t->off;
        long k = tread(t, h, 512);
        if (k == -2) return dv2_error_set(err, DV2_ECORRUPT, "%s: damaged gzip data near offset %llu", t->name,
                                          (unsigned long long)at);
        if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read error", t->name);
        if (k == 0) return 0; /* end without the zero blocks: accepted */
        if (k < 512)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated header at offset %llu", t->name,
                                 (unsigned long long)at);
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
        if (zero) return 0;
        uint64_t sz;
        if (!dv2_tar_is_header(h) || octal(h + 124, 12, &sz) < 0)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: bad tar header at offset %llu", t->name,
                                 (unsigned long long)at);
        char type = (char)h[156];
        int regular = type == '0' || type == 0 || type == '7';
        int meta = type == 'x' || type == 'L';
        if ((regular || meta) && sz > DV2_TAR_MAX_MEMBER)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: member at offset %llu: %llu bytes is too large",
                                 t->name, (unsigned long long)at, (unsigned long long)sz);
        uint64_t padded = (sz + 511) & ~(uint64_t)511;
        if (!regular && !meta) { /* skip directories, links, devices, global headers */
            uint8_t skip[512];
            for (uint64_t r = 0; r < padded; r += 512) {
                int rc = tread_exact(t, skip, 512, err);
                if (rc < 0) return rc;
            }
            continue;
        }
        /* the buffer grows with the bytes that actually arrive, so a header
         * that lies about the size cannot make us allocate for absent data */
        uint64_t have = 0;
        if (!t->data) {
            if (!(t->data = malloc(1u << 16))) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", t->name);
            t->cap = 1u << 16;
        }
        while (have < padded) {
            if (t->cap < padded + 1 && have + 1 >= t->cap) {
                uint64_t c = t->cap ? (uint64_t)t->cap * 2 : (1u << 16);
                if (c > padded + 1) c = padded + 1;
                uint8_t *d = realloc(t->data, (size_t)c);
                if (!d) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", t->name);
                t->data = d;
                t->cap = (size_t)c;
            }
            uint64_t chunk = (uint64_t)t->cap - 1 - have;
            if (chunk > padded - have) chunk = padded - have;
            int rc = tread_exact(t, t->data + have, (size_t)chunk, err);
            if (rc < 0) return rc;
            have += chunk;
        }
        t->data[sz] = 0;
        if (type == 'x') { pax_path(t, t->data, (size_t)sz); continue; }
        if (type == 'L') {
            size_t n = strnlen((char *)t->data, (size_t)sz);
            if (n >= sizeof t->longname) n = sizeof t->longname - 1;
            memcpy(t->longname, t->data, n);
            t->longname[n] = 0;
            t->have_long = 1;
            continue;
        }
        if (t->have_long) {
            snprintf(t->path, sizeof t->path, "%s", t->longname);
            t->have_long = 0;
        } else {
            char nm[101], pre[156];
            memcpy(nm, h, 100);
            nm[100] = 0;
            memcpy(pre, h + 345, 155);
            pre[155] = 0;
            if (pre[0]) snprintf(t->path, sizeof t->path, "%s/%s", pre, nm);
            else snprintf(t->path, sizeof t->path, "%s", nm);
        }
        *path = t->path;
        *data = t->data;
        *size = (size_t)sz;
        return 1;
    }
}
