#!/usr/bin/env bash
# ab_conv.sh A.cpp B.cpp [ab_conv args...]: builds two variants of
# loom/tensor/kernels/cpu/conv_direct_avx512.cpp (e.g. a copy of the committed file and an
# edited one) into one driver with ab_conv.cpp, and runs it. Needs the Release build
# (build/libloom_core.a) and libdnnl-dev. Run it twice with A and B swapped: the slot
# running second measures up to ~2% slower in identical builds.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=$root/build/experiments/kernels
mkdir -p "$out"
a=$(realpath "$1") b=$(realpath "$2")
shift 2
cxx="c++ -std=c++20 -O3 -DNDEBUG -DFMT_SHARED -I$root -I$root/loom/tensor/kernels/cpu"
avx="-mavx512f -mavx512dq -mavx512vl -mavx512bw -mfma -mavx2 -mprfchw"
for v in A B; do
  src=$a
  [ "$v" = B ] && src=$b
  # every exported entry point renamed, so that both variants link into one binary
  $cxx $avx -Dconv_direct_forward_avx512=${v}_fwd -Dconv_direct_backward_weight_avx512=${v}_wgt \
    -Dconv_direct_backward_input_avx512=${v}_bwi -Dconv_register_tiles=${v}_crt \
    -Dconv_direct_forward_pool2x2_avx512=${v}_fp -Dconv_direct_backward_weight_pool2x2_avx512=${v}_wp \
    -Dconv_direct_backward_input_pool2x2_avx512=${v}_ip -c "$src" -o "$out/variant_$v.o"
done
$cxx -DLOOM_HAVE_DNNL=1 -c "$root/apps/loom/peers.cpp" -o "$out/peers.o"
$cxx -c "$root/experiments/kernels/ab_conv.cpp" -o "$out/ab_conv.o"
c++ "$out/ab_conv.o" "$out/variant_A.o" "$out/variant_B.o" "$out/peers.o" "$root/build/libloom_core.a" \
  "$root/build/libloom_base.a" -ldnnl -lfmt -lz -lpthread -ldl -o "$out/ab_conv"
"$out/ab_conv" "$@"
