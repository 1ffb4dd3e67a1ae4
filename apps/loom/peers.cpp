#include "apps/loom/peers.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <memory>
#include <vector>

#ifdef LOOM_HAVE_DNNL
#include <dnnl.h>
#endif

namespace loom::peers {
namespace {

// CBLAS enums (row-major, no transpose).
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111;
using cblas_sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                               float*, int);
using set_threads_t = void (*)(int);

void* open_first(std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (void* h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return h;
  return nullptr;
}

}  // namespace

void reexec_for_openblas_peer(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "bench" || std::string(argv[2]) != "gemm") return;
  if (!std::getenv("OPENBLAS_CORETYPE") && !std::getenv("OPENBLAS_L2_SIZE")) return;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  std::fprintf(stderr, "# could not re-execute without OPENBLAS_CORETYPE (%s); OpenBLAS keeps its forced core\n",
               std::strerror(errno));
}

SgemmPeer openblas() {
  SgemmPeer p{"openblas", "", nullptr, nullptr};
  // OpenBLAS reads these in its constructor: unset them before it is loaded, so it picks
  // the kernel for the real CPU (its best) rather than the Haswell fallback set here. (When
  // it is already loaded -- CLP links it through LAPACK -- reexec_for_openblas_peer has
  // restarted the process without them.)
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  void* h = open_first({"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"});
  if (!h) {
    p.unavailable = "libopenblas not found (scripts/install-deps.sh installs libopenblas-dev)";
    return p;
  }
  auto gemm = reinterpret_cast<cblas_sgemm_t>(dlsym(h, "cblas_sgemm"));
  auto threads = reinterpret_cast<set_threads_t>(dlsym(h, "openblas_set_num_threads"));
  auto core = reinterpret_cast<const char* (*)()>(dlsym(h, "openblas_get_corename"));
  if (!gemm) {
    p.unavailable = "cblas_sgemm missing in libopenblas";
    return p;
  }
  if (core) p.name = std::string("openblas(") + core() + ")";
  p.sgemm = [gemm](int M, int N, int K, const float* A, const float* B, float* C) {
    gemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
  };
  p.set_threads = [threads](int t) {
    if (threads) threads(t);
  };
  return p;
}

void onednn_set_threads(int threads) {
  // Debian's oneDNN uses the OpenMP runtime it links.
  if (auto f = reinterpret_cast<set_threads_t>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) f(threads);
}

#ifdef LOOM_HAVE_DNNL

SgemmPeer onednn() {
  SgemmPeer p{"onednn", "", nullptr, nullptr};
  p.sgemm = [](int M, int N, int K, const float* A, const float* B, float* C) {
    dnnl_sgemm('N', 'N', M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
  };
  p.set_threads = onednn_set_threads;
  return p;
}

namespace {

void check(dnnl_status_t s, const char* what) {
  if (s != dnnl_success) throw std::runtime_error(std::string("oneDNN: ") + what + " failed");
}

struct DnnlMem {
  dnnl_memory_t mem = nullptr;
  std::vector<float> buf;
  DnnlMem(const dnnl_memory_desc_t* md, dnnl_engine_t eng) {
    buf.assign(dnnl_memory_desc_get_size(md) / sizeof(float) + 16, 0.01f);
    check(dnnl_memory_create(&mem, md, eng, buf.data()), "memory_create");
  }
  ~DnnlMem() { dnnl_memory_destroy(mem); }
};

struct ConvState {
  dnnl_engine_t eng = nullptr;
  dnnl_stream_t stream = nullptr;
  dnnl_primitive_desc_t fwd_pd = nullptr, bwd_d_pd = nullptr, bwd_w_pd = nullptr;
  dnnl_primitive_t fwd = nullptr, bwd_d = nullptr, bwd_w = nullptr;
  std::vector<std::unique_ptr<DnnlMem>> mems;
  ~ConvState() {
    mems.clear();
    for (auto p : {fwd, bwd_d, bwd_w})
      if (p) dnnl_primitive_destroy(p);
    for (auto pd : {fwd_pd, bwd_d_pd, bwd_w_pd})
      if (pd) dnnl_primitive_desc_destroy(pd);
    if (stream) dnnl_stream_destroy(stream);
    if (eng) dnnl_engine_destroy(eng);
  }
  dnnl_memory_t mem_for(dnnl_primitive_desc_t pd, dnnl_query_t q) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, q, 0);
    mems.push_back(std::make_unique<DnnlMem>(md, eng));
    return mems.back()->mem;
  }
  void run(dnnl_primitive_t p, std::vector<dnnl_exec_arg_t> args) {
    check(dnnl_primitive_execute(p, stream, static_cast<int>(args.size()), args.data()), "execute");
    check(dnnl_stream_wait(stream), "stream_wait");
  }
};

}  // namespace

ConvPeer onednn_conv(const ConvShape& s, bool winograd) {
  ConvPeer peer;
  const dnnl_alg_kind_t alg = winograd ? dnnl_convolution_winograd : dnnl_convolution_direct;
  auto st = std::make_shared<ConvState>();
  check(dnnl_engine_create(&st->eng, dnnl_cpu, 0), "engine_create");
  check(dnnl_stream_create(&st->stream, st->eng, dnnl_stream_default_flags), "stream_create");
  const int OH = (s.H + 2 * s.pad - s.K) / s.stride + 1, OW = (s.W + 2 * s.pad - s.K) / s.stride + 1;
  dnnl_dims_t src = {s.N, s.C, s.H, s.W}, wei = {s.O, s.C, s.K, s.K}, dst = {s.N, s.O, OH, OW};
  dnnl_dims_t strides = {s.stride, s.stride}, pad = {s.pad, s.pad};
  dnnl_memory_desc_t src_md, wei_md, dst_md;
  check(dnnl_memory_desc_init_by_tag(&src_md, 4, src, dnnl_f32, dnnl_format_tag_any), "md");
  check(dnnl_memory_desc_init_by_tag(&wei_md, 4, wei, dnnl_f32, dnnl_format_tag_any), "md");
  check(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst, dnnl_f32, dnnl_format_tag_any), "md");
  dnnl_convolution_desc_t fd, bd, wd;
  check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &src_md, &wei_md,
                                           nullptr, &dst_md, strides, pad, pad),
        "conv forward desc");
  check(dnnl_primitive_desc_create(&st->fwd_pd, &fd, nullptr, st->eng, nullptr), "forward pd");
  check(dnnl_convolution_backward_data_desc_init(&bd, alg, &src_md, &wei_md, &dst_md, strides,
                                                 pad, pad),
        "conv backward data desc");
  check(dnnl_primitive_desc_create(&st->bwd_d_pd, &bd, nullptr, st->eng, st->fwd_pd), "backward data pd");
  check(dnnl_convolution_backward_weights_desc_init(&wd, alg, &src_md, &wei_md, nullptr,
                                                    &dst_md, strides, pad, pad),
        "conv backward weights desc");
  check(dnnl_primitive_desc_create(&st->bwd_w_pd, &wd, nullptr, st->eng, st->fwd_pd), "backward weights pd");
  check(dnnl_primitive_create(&st->fwd, st->fwd_pd), "forward primitive");
  check(dnnl_primitive_create(&st->bwd_d, st->bwd_d_pd), "backward data primitive");
  check(dnnl_primitive_create(&st->bwd_w, st->bwd_w_pd), "backward weights primitive");
  dnnl_memory_t f_src = st->mem_for(st->fwd_pd, dnnl_query_src_md), f_w = st->mem_for(st->fwd_pd, dnnl_query_weights_md),
                f_dst = st->mem_for(st->fwd_pd, dnnl_query_dst_md);
  dnnl_memory_t d_dsrc = st->mem_for(st->bwd_d_pd, dnnl_query_diff_src_md),
                d_w = st->mem_for(st->bwd_d_pd, dnnl_query_weights_md),
                d_ddst = st->mem_for(st->bwd_d_pd, dnnl_query_diff_dst_md);
  dnnl_memory_t w_src = st->mem_for(st->bwd_w_pd, dnnl_query_src_md),
                w_dw = st->mem_for(st->bwd_w_pd, dnnl_query_diff_weights_md),
                w_ddst = st->mem_for(st->bwd_w_pd, dnnl_query_diff_dst_md);
  peer.forward = [st, f_src, f_w, f_dst] {
    st->run(st->fwd, {{DNNL_ARG_SRC, f_src}, {DNNL_ARG_WEIGHTS, f_w}, {DNNL_ARG_DST, f_dst}});
  };
  peer.backward_data = [st, d_dsrc, d_w, d_ddst] {
    st->run(st->bwd_d, {{DNNL_ARG_DIFF_SRC, d_dsrc}, {DNNL_ARG_WEIGHTS, d_w}, {DNNL_ARG_DIFF_DST, d_ddst}});
  };
  peer.backward_weights = [st, w_src, w_dw, w_ddst] {
    st->run(st->bwd_w, {{DNNL_ARG_SRC, w_src}, {DNNL_ARG_DIFF_WEIGHTS, w_dw}, {DNNL_ARG_DIFF_DST, w_ddst}});
  };
  return peer;
}

#else

SgemmPeer onednn() { return {"onednn", "built without oneDNN headers (libdnnl-dev)", nullptr, nullptr}; }
ConvPeer onednn_conv(const ConvShape&, bool) { return {"built without oneDNN headers (libdnnl-dev)", {}, {}, {}}; }

#endif

}  // namespace loom::peers
