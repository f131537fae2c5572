/* cpu_blas.h — which OpenBLAS kernels run, and whether they are the right
 * ones for this processor.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from the CPU
 * model when it loads.  A processor newer than the OpenBLAS build is not
 * recognised and gets a fallback core: on an AVX-512 Xeon (family 6, model
 * 207) Debian 12's 0.3.21 runs its Prescott (SSE3) kernels, 3-5x slower than
 * its SkylakeX kernels on the same machine, with no word.  These functions
 * compare the core OpenBLAS reports with the instruction sets the CPU and
 * the OS support; the command-line layer (cli/cli.c) corrects a fallback by
 * re-executing the program with OPENBLAS_CORETYPE set before any work, unless
 * the user set OPENBLAS_CORETYPE. */
#ifndef DV2_CPU_BLAS_H
#define DV2_CPU_BLAS_H

/* Instruction-set levels, as OpenBLAS's x86-64 kernel families use them. */
enum {
    DV2_BLAS_SSE = 0,    /* Prescott, Core2, Nehalem, Atom, Barcelona, ... */
    DV2_BLAS_AVX = 1,    /* Sandybridge, Bulldozer, Piledriver, Steamroller */
    DV2_BLAS_AVX2 = 2,   /* Haswell, Zen, Excavator (AVX2 + FMA) */
    DV2_BLAS_AVX512 = 3, /* SkylakeX, Cooperlake, SapphireRapids (F/BW/VL/DQ) */
};

/* The highest level this CPU and OS support (cpuid and XCR0, through the
 * compiler's __builtin_cpu_supports); DV2_BLAS_SSE off x86-64. */
int dv2_cpu_blas_cpu_level(void);
/* The level of an OpenBLAS core name (case-insensitive), or -1 for a name
 * this table does not know. */
int dv2_cpu_blas_core_level(const char *corename);
/* The core to ask for when OpenBLAS reported `corename` on a CPU of
 * `cpu_level`: "SkylakeX", "Haswell" or "Sandybridge" when the reported core
 * is a known core of a lower level; NULL to keep it (the right level, a
 * higher one, or a name not in the table, which may be newer than it). */
const char *dv2_cpu_blas_better_core(const char *corename, int cpu_level);

/* What the loaded OpenBLAS reports: its core name ("Haswell") and its
 * configuration string ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."). */
const char *dv2_cpu_blas_corename(void);
const char *dv2_cpu_blas_config(void);

#endif
