// faissx.cpp — implementation of lib/search/faissx.h over the FAISS C++ API (the
// static libfaiss.a of Debian ships the C API headers but not their compiled
// wrappers, so dv2 carries its own).  This is the only C++ in dv2: every entry
// point is extern "C", catches every exception and turns it into a DV2_E*
// status plus the exception's message.  Nothing here prints or exits.

extern "C" {
#include "core/dv2.h"
#include "core/afile.h"
}
#include "search/faissx.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <faiss/Clustering.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/IVFlib.h>

using fidx = faiss::Index::idx_t;

struct dv2_faissx_index {
    faiss::Index *index;
    std::vector<uint64_t> ids; // record ids of the rows of a loaded IndexIDMap
    bool has_ids;
};

// Runs body; any exception becomes a status and a message naming what.
template <typename F>
static int guarded(dv2_error *err, const char *what, F body) {
    try {
        return body();
    } catch (const faiss::FaissException &e) {
        // FAISS messages carry a long "Error in ... at file:line:" prefix; keep the reason.
        std::string m = e.msg;
        size_t p = m.rfind("Error: ");
        if (p != std::string::npos) m = m.substr(p + 7);
        return dv2_error_set(err, DV2_EINVAL, "faiss: %s: %s", what, m.c_str());
    } catch (const std::bad_alloc &) {
        return dv2_error_set(err, DV2_ENOMEM, "faiss: %s: out of memory", what);
    } catch (const std::exception &e) {
        return dv2_error_set(err, DV2_EINVAL, "faiss: %s: %s", what, e.what());
    } catch (...) {
        return dv2_error_set(err, DV2_EINVAL, "faiss: %s: unknown C++ exception", what);
    }
}

extern "C" int dv2_faissx_available(void) { return 1; }

extern "C" const char *dv2_faissx_version(void) {
#define DV2_STR2(x) #x
#define DV2_STR(x) DV2_STR2(x)
    return DV2_STR(FAISS_VERSION_MAJOR) "." DV2_STR(FAISS_VERSION_MINOR) "." DV2_STR(FAISS_VERSION_PATCH);
}

extern "C" int dv2_faissx_index_create(dv2_faissx_index **out, int dim, const char *factory,
                                       dv2_error *err) {
    *out = nullptr;
    if (dim <= 0 || !factory || !*factory)
        return dv2_error_set(err, DV2_EINVAL, "faiss: index: bad dimension %d or empty factory string", dim);
    return guarded(err, factory, [&]() {
        faiss::Index *ix = nullptr;
        if (strcmp(factory, "Flat") == 0)
            ix = new faiss::IndexFlatIP(dim);
        else
            ix = faiss::index_factory(dim, factory, faiss::METRIC_INNER_PRODUCT);
        /* The factory turns on polysemous training for IVF-PQ: a slow
         * reordering of PQ centroids that only Hamming-filtered search uses,
         * which dv2 never does. */
        if (faiss::IndexIVFPQ *pq = dynamic_cast<faiss::IndexIVFPQ *>(faiss::ivflib::try_extract_index_ivf(ix)))
            pq->do_polysemous_training = false;
        dv2_faissx_index *h = new (std::nothrow) dv2_faissx_index;
        if (!h) {
            delete ix;
            return dv2_error_set(err, DV2_ENOMEM, "faiss: index: out of memory");
        }
        h->index = ix;
        h->has_ids = false;
        *out = h;
        return 0;
    });
}

extern "C" void dv2_faissx_index_free(dv2_faissx_index *idx) {
    if (!idx) return;
    try {
        delete idx->index;
    } catch (...) {
    }
    delete idx;
}

extern "C" int dv2_faissx_index_dim(const dv2_faissx_index *idx) { return idx->index->d; }
extern "C" int64_t dv2_faissx_index_ntotal(const dv2_faissx_index *idx) { return idx->index->ntotal; }
extern "C" int dv2_faissx_index_is_trained(const dv2_faissx_index *idx) { return idx->index->is_trained; }

extern "C" int64_t dv2_faissx_index_nlist(const dv2_faissx_index *idx) {
    try {
        const faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(idx->index);
        return ivf ? (int64_t)ivf->nlist : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" int dv2_faissx_index_train(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err) {
    if (n <= 0) return dv2_error_set(err, DV2_EINVAL, "faiss: train: no training vectors");
    return guarded(err, "train", [&]() {
        idx->index->train((fidx)n, x);
        return 0;
    });
}

extern "C" int dv2_faissx_index_add(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err) {
    if (n < 0) return dv2_error_set(err, DV2_EINVAL, "faiss: add: negative count");
    if (!idx->index->is_trained) return dv2_error_set(err, DV2_EINVAL, "faiss: add: index is not trained");
    return guarded(err, "add", [&]() {
        idx->index->add((fidx)n, x);
        return 0;
    });
}

extern "C" int dv2_faissx_index_set_nprobe(dv2_faissx_index *idx, int nprobe, dv2_error *err) {
    if (nprobe <= 0) return dv2_error_set(err, DV2_EINVAL, "faiss: nprobe must be positive (got %d)", nprobe);
    return guarded(err, "nprobe", [&]() {
        faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(idx->index);
        if (!ivf) return dv2_error_set(err, DV2_EINVAL, "faiss: nprobe: the index has no inverted lists");
        ivf->nprobe = (size_t)nprobe < ivf->nlist ? (size_t)nprobe : ivf->nlist;
        return 0;
    });
}

extern "C" int dv2_faissx_index_search(const dv2_faissx_index *idx, float *out_sim, int64_t *out_row,
                                       const float *q, int64_t n, int k, dv2_error *err) {
    if (k <= 0) return dv2_error_set(err, DV2_EINVAL, "faiss: search: k must be positive");
    if (n <= 0) return 0;
    return guarded(err, "search", [&]() {
        static_assert(sizeof(fidx) == sizeof(int64_t), "idx_t is 64-bit");
        idx->index->search((fidx)n, q, (fidx)k, out_sim,
                           reinterpret_cast<fidx *>(out_row));
        for (int64_t i = 0; i < n * (int64_t)k; i++)
            if (out_row[i] < 0) out_sim[i] = -INFINITY;
        return 0;
    });
}

extern "C" int dv2_faissx_index_range_search_alloc(const dv2_faissx_index *idx, int64_t **out_lims,
                                                   int64_t **out_row, float **out_sim, const float *q,
                                                   int64_t n, float min_sim, dv2_error *err) {
    *out_lims = nullptr;
    *out_row = nullptr;
    *out_sim = nullptr;
    if (n < 0) return dv2_error_set(err, DV2_EINVAL, "faiss: range search: negative count");
    return guarded(err, "range search", [&]() {
        faiss::RangeSearchResult res((fidx)n);
        if (n > 0) idx->index->range_search((fidx)n, q, min_sim, &res);
        size_t total = n > 0 ? res.lims[n] : 0;
        int64_t *lims = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n + 1));
        int64_t *rows = (int64_t *)malloc(sizeof(int64_t) * (total ? total : 1));
        float *sims = (float *)malloc(sizeof(float) * (total ? total : 1));
        if (!lims || !rows || !sims) {
            free(lims);
            free(rows);
            free(sims);
            return dv2_error_set(err, DV2_ENOMEM, "faiss: range search: out of memory for %zu results", total);
        }
        for (int64_t i = 0; i <= n; i++) lims[i] = n > 0 ? (int64_t)res.lims[i] : 0;
        for (size_t j = 0; j < total; j++) {
            rows[j] = res.labels[j];
            sims[j] = res.distances[j];
        }
        *out_lims = lims;
        *out_row = rows;
        *out_sim = sims;
        return 0;
    });
}

extern "C" int dv2_faissx_index_save(const dv2_faissx_index *idx, const char *path, int force,
                                     const uint64_t *ids, dv2_error *err) {
    dv2_afile af;
    int rc = dv2_afile_open(&af, path, force, err);
    if (rc < 0) return rc;
    rc = guarded(err, "save", [&]() {
        if (!ids) {
            faiss::write_index(idx->index, af.f);
            return 0;
        }
        // A map over the built index (not owning it): the constructor taking
        // an index wants it empty, so the fields are set as add_with_ids would.
        faiss::IndexIDMap map;
        map.index = idx->index;
        map.own_fields = false;
        map.d = idx->index->d;
        map.ntotal = idx->index->ntotal;
        map.metric_type = idx->index->metric_type;
        map.is_trained = idx->index->is_trained;
        map.id_map.resize((size_t)map.ntotal);
        for (size_t i = 0; i < map.id_map.size(); i++) map.id_map[i] = (fidx)ids[i];
        faiss::write_index(&map, af.f);
        map.index = nullptr;
        return 0;
    });
    if (rc < 0) {
        dv2_error_prefix(err, "%s", path);
        dv2_afile_abort(&af);
        return rc;
    }
    return dv2_afile_commit(&af, err);
}

extern "C" int dv2_faissx_index_load(dv2_faissx_index **out, const char *path, dv2_error *err) {
    *out = nullptr;
    FILE *f = fopen(path, "rb");
    if (!f) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    int rc = guarded(err, "load", [&]() {
        faiss::Index *ix = faiss::read_index(f);
        std::vector<uint64_t> ids;
        bool has_ids = false;
        if (faiss::IndexIDMap *map = dynamic_cast<faiss::IndexIDMap *>(ix)) {
            faiss::Index *inner = map->index;
            if (!inner || map->id_map.size() != (size_t)inner->ntotal || map->ntotal != inner->ntotal) {
                delete ix;
                return dv2_error_set(err, DV2_ECORRUPT, "faiss: load: the id map does not match the index");
            }
            ids.assign(map->id_map.begin(), map->id_map.end());
            has_ids = true;
            map->own_fields = false;
            map->index = nullptr;
            delete map;
            ix = inner;
        }
        if (ix->metric_type != faiss::METRIC_INNER_PRODUCT) {
            delete ix;
            return dv2_error_set(err, DV2_EINVAL, "faiss: load: index metric is not inner product");
        }
        dv2_faissx_index *h = new dv2_faissx_index;
        h->index = ix;
        h->ids.swap(ids);
        h->has_ids = has_ids;
        *out = h;
        return 0;
    });
    fclose(f);
    if (rc < 0) dv2_error_prefix(err, "%s", path);
    return rc;
}

extern "C" const uint64_t *dv2_faissx_index_ids(const dv2_faissx_index *idx) {
    return idx->has_ids ? idx->ids.data() : nullptr;
}

extern "C" int dv2_faissx_kmeans(float *out_centroids, double *out_objective, const float *x, int64_t n,
                                 int dim, int k, int niter, int spherical, uint64_t seed,
                                 int max_points_per_centroid, dv2_error *err) {
    if (dim <= 0 || k <= 0 || niter <= 0)
        return dv2_error_set(err, DV2_EINVAL, "k-means: bad parameters (dim %d, k %d, niter %d)", dim, k, niter);
    if (n < k)
        return dv2_error_set(err, DV2_EINVAL, "k-means: %lld points cannot make %d clusters", (long long)n, k);
    return guarded(err, "k-means", [&]() {
        faiss::ClusteringParameters cp;
        cp.niter = niter;
        cp.spherical = spherical != 0;
        cp.seed = (int)(seed & 0x7fffffff);
        if (max_points_per_centroid > 0) cp.max_points_per_centroid = max_points_per_centroid;
        cp.min_points_per_centroid = 1; /* FAISS would print its own warning; callers warn instead */
        faiss::Clustering clus(dim, k, cp);
        faiss::IndexFlatIP ip(dim);
        faiss::IndexFlatL2 l2(dim);
        faiss::Index *assign = spherical ? (faiss::Index *)&ip : (faiss::Index *)&l2;
        clus.train((fidx)n, x, *assign);
        if (clus.centroids.size() != (size_t)k * (size_t)dim)
            return dv2_error_set(err, DV2_EINVAL, "k-means: FAISS returned %zu centroid values, wanted %zu",
                                 clus.centroids.size(), (size_t)k * (size_t)dim);
        memcpy(out_centroids, clus.centroids.data(), sizeof(float) * (size_t)k * (size_t)dim);
        if (out_objective)
            *out_objective = clus.iteration_stats.empty() ? 0.0 : (double)clus.iteration_stats.back().obj;
        return 0;
    });
}
