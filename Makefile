# dv2 — one Makefile for the library, the seven programs, tests and benchmarks.
#
#   make            build bin/dv2-* (features detected by compiling probes)
#   make CUDA=0     build without the CUDA backend (also MPI=0, FAISS=0)
#   make test       build with -Werror and run the test suite
#   make help       list the targets
#
# Sources are discovered per folder of lib/ (LIB_DIRS, the layers of
# lib/README): lib/*/*.c (+ .cpp when FAISS is on) form build/libdv2.a,
# kernels/*.cu are added when CUDA is on, every cmd/NAME.c is
# a program bin/NAME, every tests/test_*.c a test binary build/tests/test_*.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= gcc
CXX     ?= g++
WERROR  ?= 1
OPT     ?= -O2
BUILD   ?= build
BIN     ?= bin

# GCC's -O2 vectorises only loops of a known trip count; the cheap cost model
# also takes the row loops of unknown length.  No floating-point operation
# changes (no reassociation, no contraction under -std=c11): the same bits.
VECT := $(shell $(CC) -Werror -fvect-cost-model=cheap -x c -c -o /dev/null /dev/null 2>/dev/null && echo -fvect-cost-model=cheap)
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE $(OPT) $(VECT) -g -fopenmp -Wall -Wextra -Wno-unused-parameter -pthread -Ilib -Ikernels
CXXFLAGS_BASE = -std=c++17 $(OPT) -g -fopenmp -Wall -Wextra -Wno-unused-parameter -pthread -Ilib
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
CXXFLAGS_BASE += -Werror
endif
SAN ?=
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer
CXXFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDSAN = -fsanitize=$(SAN)
endif

# The folders of lib/, lowest layer first (lib/README; tests/t_layers.sh).
LIB_DIRS := core format image ops ops/cpu ops/cuda model search train embed pack curate eval cli
LIB_H    := $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.h))

LIBS = -lzstd -lturbojpeg -lpng -lz -lopenblas -lm

# ---- feature probes: each compiles (and links) a tiny program ----------------
# A feature found is cached in $(BUILD)/probe/*.result (make clean re-probes);
# one not found is probed again by the next make, so installing a library
# (scripts/setup) after a first build turns it on.  A variable given on the
# command line (CUDA=0) always wins.
PROBE_DIR := $(BUILD)/probe
$(shell mkdir -p $(PROBE_DIR))
probe = $(shell f=$(PROBE_DIR)/$(1).result; if grep -qx 1 $$f 2>/dev/null; then echo 1; elif { $(2); } >/dev/null 2>&1; then echo 1 > $$f; echo 1; else echo 0; fi)

MPI ?= $(call probe,mpi,printf '\043include <mpi.h>\nint main(void){return MPI_Init(0,0);}\n' > $(PROBE_DIR)/mpi.c && \
	$(CC) $(PROBE_DIR)/mpi.c -o $(PROBE_DIR)/mpi $$(mpicc --showme:compile) $$(mpicc --showme:link))
MPI := $(MPI)
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell mpicc --showme:compile)
MPI_LIBS := $(shell mpicc --showme:link)
CFLAGS_BASE += $(MPI_CFLAGS) -DDV2_HAVE_MPI=1
CXXFLAGS_BASE += -DDV2_HAVE_MPI=1
LIBS += $(MPI_LIBS)
endif

FAISS ?= $(call probe,faiss,printf '\043include <faiss/IndexFlat.h>\nint main(){faiss::IndexFlatIP i(4);return (int)i.ntotal;}\n' > $(PROBE_DIR)/faiss.cpp && \
	$(CXX) -fopenmp $(PROBE_DIR)/faiss.cpp -o $(PROBE_DIR)/faiss -lfaiss -lopenblas -llapack)
FAISS := $(FAISS)
ifeq ($(FAISS),1)
CFLAGS_BASE += -DDV2_HAVE_FAISS=1
CXXFLAGS_BASE += -DDV2_HAVE_FAISS=1
LIBS := -lfaiss $(LIBS) -llapack -lstdc++
LIB_CXX := $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.cpp))
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= 90
CUDA ?= $(call probe,cuda,[ -n "$(NVCC)" ] && printf '__global__ void k(float*x){x[0]=1;}\nint main(){return 0;}\n' > $(PROBE_DIR)/cuda.cu && \
	$(NVCC) -arch=sm_$(CUDA_ARCH) $(PROBE_DIR)/cuda.cu -o $(PROBE_DIR)/cuda)
CUDA := $(CUDA)
ifeq ($(CUDA),1)
NVCCFLAGS = -O2 -g -std=c++17 -arch=sm_$(CUDA_ARCH) -Ilib -Ikernels -Xcompiler -Wall -DDV2_HAVE_CUDA=1
CFLAGS_BASE += -DDV2_HAVE_CUDA=1 -DDV2_CUDA_ARCH=\"sm_$(CUDA_ARCH)\" -I$(CUDA_HOME)/include
LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
LIB_CU := $(wildcard kernels/*.cu) $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.cu))
# NCCL for the CUDA backend's collectives across GPUs (NCCL=0: through MPI on the host)
NCCL ?= $(call probe,nccl,[ -f $(CUDA_HOME)/include/nccl.h ] && [ -e $(CUDA_HOME)/lib64/libnccl.so ])
NCCL := $(NCCL)
ifeq ($(NCCL),1)
NVCCFLAGS += -DDV2_HAVE_NCCL=1
CFLAGS_BASE += -DDV2_HAVE_NCCL=1
LIBS += -lnccl
endif
else
NCCL := 0
endif

CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
ALL_CXXFLAGS = $(CXXFLAGS_BASE) $(CXXFLAGS)

# Every object depends on $(BUILD)/flags, rewritten only when the compile
# flags change (a feature turned on or off, SAN=, CFLAGS=): a build with
# other features recompiles instead of linking stale objects.
FLAGS_LINE := $(ALL_CFLAGS) | $(ALL_CXXFLAGS) | $(NVCCFLAGS)
$(shell [ "$$(cat $(BUILD)/flags 2>/dev/null)" = '$(FLAGS_LINE)' ] || printf '%s\n' '$(FLAGS_LINE)' > $(BUILD)/flags)

# ---- sources ----------------------------------------------------------------
LIB_C    := $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.c))
LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.o)
PROGS    := $(patsubst cmd/%.c,$(BIN)/%,$(wildcard cmd/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIBDV2   := $(BUILD)/libdv2.a

.PHONY: all test test-gpu bench bench-gpu demo man install clean asan help fuzz features
.DEFAULT_GOAL := all

all: $(PROGS) features

features:
	@echo "dv2: features: cuda=$(CUDA) nccl=$(NCCL) mpi=$(MPI) faiss=$(FAISS)$(if $(filter 0,$(CUDA)), (CPU-only build: nvcc not found or CUDA=0))"

$(BUILD)/%.o: %.c $(BUILD)/flags $(LIB_H) $(wildcard kernels/*.h) $(wildcard kernels/*.cuh) $(wildcard tests/*.h tests/ref/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cpp $(BUILD)/flags $(LIB_H)
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(BUILD)/flags $(LIB_H) $(wildcard kernels/*.h) $(wildcard kernels/*.cuh) $(wildcard lib/ops/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIBDV2): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/%: $(BUILD)/cmd/%.o $(LIBDV2)
	@mkdir -p $(BIN)
	$(CC) -fopenmp $(LDSAN) $(LDFLAGS) $< $(LIBDV2) $(LIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBDV2)
	$(CC) -fopenmp $(LDSAN) $(LDFLAGS) $< $(LIBDV2) $(LIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBDV2)
	$(CC) -fopenmp $(LDSAN) $(LDFLAGS) $< $(LIBDV2) $(LIBS) -o $@

# ---- tests and benchmarks ---------------------------------------------------
test: $(PROGS) $(TESTS)
	@LC_ALL=C BUILD=$(BUILD) BIN=$(BIN) DV2_CUDA=$(CUDA) DV2_MPI=$(MPI) DV2_FAISS=$(FAISS) sh tests/run.sh $(T)

test-gpu: $(PROGS) $(TESTS)
	@LC_ALL=C BUILD=$(BUILD) BIN=$(BIN) DV2_CUDA=$(CUDA) DV2_GPU_ONLY=1 sh tests/run.sh $(T)

bench: $(PROGS) $(BENCHES)
	@LC_ALL=C BUILD=$(BUILD) sh bench/run.sh $(B)

bench-gpu: $(PROGS) $(BENCHES)
	@LC_ALL=C BUILD=$(BUILD) DV2_GPU_ONLY=1 sh bench/run.sh $(B)

demo: $(PROGS)
	sh scripts/demo

# The sanitizer build runs the tests of every parser of untrusted input
# (shards, IDX/tar, matrices, safetensors/JSON, configs, id lists, images).
ASAN_TESTS ?= test_core test_shard test_matrix test_safetensors test_json test_config test_idlist test_image test_tar test_lock \
	test_backend_ops test_ops_grad test_loss test_train_collapse test_vit test_probe test_embed
asan:
	$(MAKE) BUILD=build-asan SAN=address,undefined OPT=-O1 CUDA=0 \
		$(foreach t,$(ASAN_TESTS),$(if $(wildcard tests/$(t).c),build-asan/tests/$(t)))
	@ASAN_OPTIONS=abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 LC_ALL=C BUILD=build-asan \
		sh tests/run.sh $(foreach t,$(ASAN_TESTS),$(if $(wildcard tests/$(t).c),$(t)))

fuzz:
	$(MAKE) -C tests/fuzz

man:
	@for f in man/*.[157]; do echo "checking $$f"; LC_ALL=C man --warnings -E UTF-8 -l $$f >/dev/null || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	rm -rf $(BUILD) build-asan bin

help:
	@echo "targets:"
	@echo "  all        build bin/dv2-* (default); CUDA=0 MPI=0 FAISS=0 turn features off"
	@echo "  test       build with -Werror and run the tests (T=pattern selects some)"
	@echo "  test-gpu   run only the GPU tests (needs a GPU)"
	@echo "  bench      CPU benchmarks against their baselines (B=pattern selects some)"
	@echo "  bench-gpu  GPU benchmarks"
	@echo "  demo       the Fashion-MNIST pipeline (scripts/demo)"
	@echo "  man        check the man pages render"
	@echo "  install    install programs and man pages (PREFIX, DESTDIR)"
	@echo "  asan       build with AddressSanitizer + UBSan into build-asan/"
	@echo "  fuzz       build the fuzz targets in tests/fuzz (clang, libFuzzer)"
	@echo "  clean      remove build outputs"
	@echo "variables: CUDA_ARCH=$(CUDA_ARCH) WERROR=$(WERROR) OPT=$(OPT) BUILD=$(BUILD)"

.SECONDARY:
