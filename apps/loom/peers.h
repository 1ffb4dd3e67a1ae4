// Peer libraries for side-by-side benchmarks. Loom never needs them to build or run:
// OpenBLAS is loaded with dlopen at run time (after unsetting OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE, which this machine sets and which keep OpenBLAS off its AVX-512
// kernels), oneDNN is linked only when its headers were found at build time.
#pragma once

#include <functional>
#include <string>

namespace loom::peers {

struct SgemmPeer {
  std::string name;
  std::string unavailable;  // why, when it cannot be used
  // C[M,N] = A[M,K] * B[K,N], all row-major and contiguous.
  std::function<void(int M, int N, int K, const float* A, const float* B, float* C)> sgemm;
  std::function<void(int threads)> set_threads;
};

SgemmPeer openblas();
// OpenBLAS is loaded at start-up (CLP links it through LAPACK) and fixes its kernel from
// OPENBLAS_CORETYPE then: for `loom bench gemm`, re-executes the process with that variable
// (and OPENBLAS_L2_SIZE) unset so the peer runs its best kernel. Returns if nothing to do.
void reexec_for_openblas_peer(int argc, char** argv);
SgemmPeer onednn();

// One convolution layer in oneDNN at its best: layouts of its own choosing ("any"), with
// reorders not timed. Returns false with `why` set when oneDNN is not available.
struct ConvShape {
  int N, C, H, W, O, K, stride, pad;
};
struct ConvPeer {
  std::string unavailable;
  std::function<void()> forward, backward_data, backward_weights;
};
// winograd: oneDNN's Winograd algorithm instead of its direct one (unavailable when this
// oneDNN build has no Winograd kernel for the shape and CPU).
ConvPeer onednn_conv(const ConvShape& s, bool winograd = false);
void onednn_set_threads(int threads);

}  // namespace loom::peers
