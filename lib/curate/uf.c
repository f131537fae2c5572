/* uf.c — disjoint sets with min-row roots and path halving (see
 * unionfind.h for why the root is the smallest row). */
#include "curate/uf.h"

#include <stdlib.h>

int dv2_uf_init(dv2_uf *uf, int64_t n, dv2_error *err) {
    uf->n = 0;
    uf->parent = NULL;
    if (n < 0) return dv2_error_set(err, DV2_EINVAL, "union-find: negative size");
    uf->parent = dv2_malloc_array(n > 0 ? (size_t)n : 1, sizeof(int64_t));
    if (!uf->parent)
        return dv2_error_set(err, DV2_ENOMEM, "union-find: cannot allocate %lld rows", (long long)n);
    uf->n = n;
    for (int64_t i = 0; i < n; i++) uf->parent[i] = i;
    return 0;
}

void dv2_uf_free(dv2_uf *uf) {
    free(uf->parent);
    uf->parent = NULL;
    uf->n = 0;
}

int64_t dv2_uf_find(dv2_uf *uf, int64_t a) {
    int64_t *p = uf->parent;
    while (p[a] != a) {
        p[a] = p[p[a]];
        a = p[a];
    }
    return a;
}

int dv2_uf_union(dv2_uf *uf, int64_t a, int64_t b) {
    int64_t ra = dv2_uf_find(uf, a), rb = dv2_uf_find(uf, b);
    if (ra == rb) return 0;
    if (ra < rb)
        uf->parent[rb] = ra;
    else
        uf->parent[ra] = rb;
    return 1;
}

void dv2_uf_flatten(dv2_uf *uf) {
    /* parent[i] <= i always, so one pass in increasing order suffices */
    for (int64_t i = 0; i < uf->n; i++) uf->parent[i] = uf->parent[uf->parent[i]];
}
