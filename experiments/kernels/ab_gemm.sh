#!/usr/bin/env bash
# ab_gemm.sh DIR [-DNAME=VALUE ...] -- [ab_gemm args...]: DIR holds a variant of
# loom/tensor/kernels/cpu/gemm_avx512.cpp and/or gemm_microkernel.h under the same
# relative path (loom/tensor/kernels/cpu/); its kernels are compiled into namespace loomB
# and timed against the committed ones and oneDNN in one process (ab_gemm.cpp). Files DIR
# lacks come from the tree. The -D options go to the variant only, e.g. the tile shape:
#   ab_gemm.sh /tmp/v -DLOOM_AVX512_MR=8 -DLOOM_AVX512_NV=3 -DLOOM_AVX512_AS=8 -- 512 768 768 1 5 9
# Needs the Release build (build/libloom_core.a) and libdnnl-dev.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=$root/build/experiments/kernels
mkdir -p "$out"
dir=$(realpath "$1")
shift
defs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do defs+=("$1"); shift; done
[ $# -gt 0 ] && shift
src=$dir/loom/tensor/kernels/cpu/gemm_avx512.cpp
[ -f "$src" ] || src=$root/loom/tensor/kernels/cpu/gemm_avx512.cpp
cxx="c++ -std=c++20 -O3 -DNDEBUG -DFMT_SHARED"
# DIR first on the include path: its gemm_microkernel.h wins over the tree's (the source
# is compiled from a copy in DIR's tree so that its quoted includes search DIR first too).
mkdir -p "$out/variant/loom/tensor/kernels/cpu"
cp "$src" "$out/variant/loom/tensor/kernels/cpu/gemm_avx512.cpp"
$cxx -I"$dir" -I"$root" -mavx512f -mavx512dq -mavx512vl -mavx512bw -mfma -mavx2 -mprfchw -Dloom=loomB "${defs[@]}" \
  -c "$out/variant/loom/tensor/kernels/cpu/gemm_avx512.cpp" -o "$out/gemm_variant.o"
$cxx -I"$root" -DLOOM_HAVE_DNNL=1 -c "$root/apps/loom/peers.cpp" -o "$out/peers.o"
$cxx -I"$root" -c "$root/experiments/kernels/ab_gemm.cpp" -o "$out/ab_gemm.o"
c++ "$out/ab_gemm.o" "$out/gemm_variant.o" "$out/peers.o" "$root/build/libloom_core.a" "$root/build/libloom_base.a" \
  -ldnnl -lfmt -lz -lpthread -ldl -o "$out/ab_gemm"
"$out/ab_gemm" "$@"
