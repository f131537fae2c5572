#!/bin/sh
# build.sh — builds build-emu/test_backend_ops_emu: tests/test_backend_ops.c
# against the REAL lib/ops/cuda/*.cu kernels compiled with g++ on the host
# through the CUDA emulation of tests/emu (see tests/emu/README).
#   sh tests/emu/build.sh            (from the repository root)
# BUILD (default build-emu), LIB_BUILD (the CPU library's; default BUILD), CUDA_INC (default /usr/local/cuda/include),
# JOBS (default 2), EMU_SAN=address[,undefined] (the kernels, the emulation
# and the link with AddressSanitizer, UBSan: a kernel's access outside a
# cudaMalloc'd buffer, a misaligned float4, an int overflow stop the run;
# use another BUILD).  Exit 77 when g++ or the CUDA headers are missing.
set -eu
BUILD=${BUILD:-build-emu}
LIB_BUILD=${LIB_BUILD:-$BUILD} # where the CPU library is built
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}
JOBS=${JOBS:-2}
CXX=${CXX:-g++}
command -v "$CXX" >/dev/null 2>&1 || { echo "no $CXX"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
for h in cuda_runtime_api.h cublas_v2.h cuda_bf16.h; do
	[ -f "$CUDA_INC/$h" ] || { echo "no $CUDA_INC/$h (CUDA headers)"; exit 77; }
done
# the CPU library, without CUDA (its backend.o is replaced below)
make -s CUDA=0 MPI=0 FAISS=0 BUILD="$LIB_BUILD" -j"$JOBS" "$LIB_BUILD/libdv2.a" "$LIB_BUILD/tests/test_backend_ops.o"
E=$BUILD/emu
mkdir -p "$E/src"
SAN=${EMU_SAN:+-fsanitize=$EMU_SAN -fno-sanitize-recover=all -fno-omit-frame-pointer}
CXXFLAGS="-std=c++17 -O1 -g -fno-strict-aliasing -Wall -Wno-unused-function -Wno-unknown-pragmas -pthread $SAN"
INC="-Itests/emu/include -I$CUDA_INC -Ilib -Ikernels"
# other flags than the last build's: everything is rebuilt
if [ "$(cat "$E/flags" 2>/dev/null)" != "$CXXFLAGS $INC" ]; then rm -f "$E"/*.o; fi
echo "$CXXFLAGS $INC" > "$E/flags"
objs=""
pids=""
for f in lib/ops/cuda/*.cu tests/emu/emu.cpp; do
	b=$(basename "$f")
	case $f in
	*.cu) # the rewritten copy changes only when the rewrite does
		src=$E/src/$b.cpp
		python3 tests/emu/conv.py "$f" "$src.new" 2>/dev/null
		if cmp -s "$src.new" "$src"; then rm -f "$src.new"; else mv "$src.new" "$src"; fi ;;
	*) src=$f ;;
	esac
	o=$E/${b%.*}.o
	objs="$objs $o"
	# rebuild when the source, the rewrite or an emulation header is newer
	if [ ! -f "$o" ] || [ -n "$(find "$src" tests/emu/include lib/ops/cuda lib/ops/ops.h lib/core -newer "$o" -type f 2>/dev/null | head -n 1)" ]; then
		"$CXX" $CXXFLAGS $INC -DDV2_HAVE_CUDA=1 -c "$src" -o "$o" &
		pids="$pids $!"
		if [ "$(echo $pids | wc -w)" -ge "$JOBS" ]; then
			for p in $pids; do wait "$p"; done
			pids=""
		fi
	fi
done
for p in $pids; do wait "$p"; done
# __shared__ is a static (cuda_runtime.h), in .bss (or .bss._ZZ<function>):
# those sections of the kernel objects become emu_shared here, which emu.cpp
# poisons before every block.  A zero-initialised static of a kernel file
# that is not a function's (so not __shared__) stops the build.
for o in $objs; do
	case $o in */emu.o) continue ;; esac
	ren=$(objdump -h "$o" | awk '$2 ~ /^\.bss(\._ZZ.*)?$/ { printf " --rename-section %s=emu_shared", $2 }')
	[ -z "$ren" ] || objcopy $ren "$o"
	if nm -C "$o" | awk '$2 ~ /^[bB]$/' | grep -v '::' | grep -q .; then
		echo "$o: a zero-initialised static that is not __shared__:"; nm -C "$o" | awk '$2 ~ /^[bB]$/' | grep -v '::'; exit 1
	fi
	# the static shared memory of each kernel: at most 48 KiB (the limit
	# without an opt-in); under a sanitizer the sizes include no redzones
	nm -C -S -t d "$o" | awk '$3 ~ /^[bB]$/ { n = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", n); k = n; sub(/::[^:]*$/, "", k);
		sz[k] += $2 + 0 } END { for (k in sz) if (sz[k] > 49152) { print k ": " sz[k] " bytes of static shared memory"; bad = 1 } exit bad }' || exit 1
done
# backend.c with the CUDA backends registered
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Ilib -Ikernels -DDV2_HAVE_CUDA=1 -c lib/ops/backend.c -o "$E/backend.o"
# libdv2.a without its CUDA-less backend.o
cp "$LIB_BUILD/libdv2.a" "$E/libdv2_nobackend.a"
ar d "$E/libdv2_nobackend.a" backend.o
"$CXX" -fopenmp $SAN -o "$BUILD/test_backend_ops_emu" "$LIB_BUILD/tests/test_backend_ops.o" "$E/backend.o" $objs \
	"$E/libdv2_nobackend.a" -lzstd -lturbojpeg -lpng -lz -lopenblas -lm -pthread
echo "built $BUILD/test_backend_ops_emu"
