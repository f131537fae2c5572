/* device_radix_sort.cuh — host EMULATION of cub::DeviceRadixSort::SortPairs
 * for the CUDA emulation (test infrastructure, C++; see
 * tests/emu/include/cuda_runtime.h): the same interface — a sizing call with
 * d_temp_storage NULL, then the sort — done as a host stable sort on the
 * bits [begin_bit, end_bit) of the keys (signed keys in signed order, as
 * cub orders them).  The temp storage must be the size the sizing call
 * gave, and it is filled with garbage so that nothing may rely on it. */
#ifndef DV2_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define DV2_EMU_CUB_DEVICE_RADIX_SORT_CUH
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>
#include <vector>

cudaError_t emu_check_device_range(const void *p, size_t bytes); /* emu.cpp */
void emu_set_error(cudaError_t e);

namespace cub {
struct DeviceRadixSort {
    template <class K, class V, class N>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes, const K *keys_in,
                                 K *keys_out, const V *values_in, V *values_out, N num_items,
                                 int begin_bit = 0, int end_bit = (int)sizeof(K) * 8,
                                 cudaStream_t stream = 0) {
        static_assert(std::is_integral<K>::value, "integer keys");
        (void)stream;
        size_t n = num_items > 0 ? (size_t)num_items : 0;
        size_t need = 256 + 2 * n * (sizeof(K) + sizeof(V));
        if (!d_temp_storage) {
            temp_storage_bytes = need;
            return cudaSuccess;
        }
        if (temp_storage_bytes < need || begin_bit < 0 || end_bit > (int)sizeof(K) * 8 ||
            begin_bit >= end_bit)
            return cudaErrorInvalidValue;
        cudaError_t e;
        if ((e = emu_check_device_range(d_temp_storage, temp_storage_bytes)) ||
            (e = emu_check_device_range(keys_in, n * sizeof(K))) ||
            (e = emu_check_device_range(keys_out, n * sizeof(K))) ||
            (e = emu_check_device_range(values_in, n * sizeof(V))) ||
            (e = emu_check_device_range(values_out, n * sizeof(V))))
            return e;
        typedef typename std::make_unsigned<K>::type U;
        const int bits = (int)sizeof(K) * 8;
        U flip = std::is_signed<K>::value ? (U)((U)1 << (bits - 1)) : (U)0;
        U mask = (U)(end_bit - begin_bit >= bits ? ~(U)0 : (((U)1 << (end_bit - begin_bit)) - 1));
        std::vector<size_t> ord(n);
        for (size_t i = 0; i < n; i++) ord[i] = i;
        auto rk = [&](size_t i) { return (U)((((U)keys_in[i] ^ flip) >> begin_bit) & mask); };
        std::stable_sort(ord.begin(), ord.end(), [&](size_t a, size_t b) { return rk(a) < rk(b); });
        std::vector<K> k(n);
        std::vector<V> v(n);
        for (size_t i = 0; i < n; i++) k[i] = keys_in[ord[i]], v[i] = values_in[ord[i]];
        memset(d_temp_storage, 0xff, temp_storage_bytes);
        std::copy(k.begin(), k.end(), keys_out);
        std::copy(v.begin(), v.end(), values_out);
        return cudaSuccess;
    }
};
} // namespace cub
#endif
