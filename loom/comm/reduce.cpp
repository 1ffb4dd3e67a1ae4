// Reduction kernels. Each (dtype, op) loop is compiled for AVX-512, AVX2 and baseline x86-64
// (GCC function multiversioning picks one at load time); the loops are plain so the compiler
// vectorizes them.
#include <algorithm>
#include <cstring>

#include "loom/base/error.h"
#include "loom/comm/types.h"

namespace loom::comm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::bf16:
      return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "float";
    case DType::f64:
      return "double";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::bf16:
      return "bfloat16";
  }
  return "?";
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::prod:
      return "prod";
    case ReduceOp::min:
      return "min";
    case ReduceOp::max:
      return "max";
    case ReduceOp::avg:
      return "avg";
  }
  return "?";
}

DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float" || s == "float32") return DType::f32;
  if (s == "f64" || s == "double" || s == "float64") return DType::f64;
  if (s == "i32" || s == "int32" || s == "int") return DType::i32;
  if (s == "i64" || s == "int64") return DType::i64;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  LOOM_THROW("comm: unknown dtype '{}' (expected f32, f64, i32, i64 or bf16)", s);
}

ReduceOp parse_reduce_op(const std::string& s) {
  if (s == "sum") return ReduceOp::sum;
  if (s == "prod") return ReduceOp::prod;
  if (s == "min") return ReduceOp::min;
  if (s == "max") return ReduceOp::max;
  if (s == "avg") return ReduceOp::avg;
  LOOM_THROW("comm: unknown reduce op '{}' (expected sum, prod, min, max or avg)", s);
}

namespace {

#define LOOM_REDUCE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

template <typename T>
struct Ops {
  static T sum(T a, T b) { return a + b; }
  static T prod(T a, T b) { return a * b; }
  static T min(T a, T b) { return b < a ? b : a; }
  static T max(T a, T b) { return a < b ? b : a; }
};

// One multiversioned loop per (type, op); templates cannot carry target_clones, so a macro
// stamps them out.
#define LOOM_REDUCE_LOOP(T, OP)                                                       \
  LOOM_REDUCE_CLONES void reduce_##T##_##OP(T* d, const T* a, const T* b, size_t n) { \
    for (size_t i = 0; i < n; ++i) d[i] = Ops<T>::OP(a[i], b[i]);                     \
  }
#define LOOM_REDUCE_TYPE(T) \
  LOOM_REDUCE_LOOP(T, sum)  \
  LOOM_REDUCE_LOOP(T, prod) \
  LOOM_REDUCE_LOOP(T, min)  \
  LOOM_REDUCE_LOOP(T, max)

using f32 = float;
using f64 = double;
using i32 = int32_t;
using i64 = int64_t;
LOOM_REDUCE_TYPE(f32)
LOOM_REDUCE_TYPE(f64)
LOOM_REDUCE_TYPE(i32)
LOOM_REDUCE_TYPE(i64)

// bf16: widen 16 elements at a time into float, reduce, round back.
void reduce_bf16(uint16_t* d, const uint16_t* a, const uint16_t* b, size_t n, ReduceOp op) {
  constexpr size_t kB = 256;
  float fa[kB], fb[kB];
  for (size_t i0 = 0; i0 < n; i0 += kB) {
    const size_t m = std::min(kB, n - i0);
    for (size_t i = 0; i < m; ++i) {
      fa[i] = bf16_to_float(a[i0 + i]);
      fb[i] = bf16_to_float(b[i0 + i]);
    }
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg:
        reduce_f32_sum(fa, fa, fb, m);
        break;
      case ReduceOp::prod:
        reduce_f32_prod(fa, fa, fb, m);
        break;
      case ReduceOp::min:
        reduce_f32_min(fa, fa, fb, m);
        break;
      case ReduceOp::max:
        reduce_f32_max(fa, fa, fb, m);
        break;
    }
    for (size_t i = 0; i < m; ++i) d[i0 + i] = float_to_bf16(fa[i]);
  }
}

template <typename T>
void dispatch(T* d, const T* a, const T* b, size_t n, ReduceOp op, void (*s)(T*, const T*, const T*, size_t),
              void (*p)(T*, const T*, const T*, size_t), void (*mn)(T*, const T*, const T*, size_t),
              void (*mx)(T*, const T*, const T*, size_t)) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      s(d, a, b, n);
      return;
    case ReduceOp::prod:
      p(d, a, b, n);
      return;
    case ReduceOp::min:
      mn(d, a, b, n);
      return;
    case ReduceOp::max:
      mx(d, a, b, n);
      return;
  }
}

}  // namespace

void reduce_to(void* dst, const void* a, const void* b, size_t count, DType t, ReduceOp op) {
  if (count == 0) return;
  switch (t) {
    case DType::f32:
      dispatch(static_cast<float*>(dst), static_cast<const float*>(a), static_cast<const float*>(b), count, op,
               reduce_f32_sum, reduce_f32_prod, reduce_f32_min, reduce_f32_max);
      return;
    case DType::f64:
      dispatch(static_cast<double*>(dst), static_cast<const double*>(a), static_cast<const double*>(b), count, op,
               reduce_f64_sum, reduce_f64_prod, reduce_f64_min, reduce_f64_max);
      return;
    case DType::i32:
      dispatch(static_cast<int32_t*>(dst), static_cast<const int32_t*>(a), static_cast<const int32_t*>(b), count, op,
               reduce_i32_sum, reduce_i32_prod, reduce_i32_min, reduce_i32_max);
      return;
    case DType::i64:
      dispatch(static_cast<int64_t*>(dst), static_cast<const int64_t*>(a), static_cast<const int64_t*>(b), count, op,
               reduce_i64_sum, reduce_i64_prod, reduce_i64_min, reduce_i64_max);
      return;
    case DType::bf16:
      reduce_bf16(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), count,
                  op);
      return;
  }
}

void reduce_into(void* dst, const void* src, size_t count, DType t, ReduceOp op) {
  reduce_to(dst, dst, src, count, t, op);
}

double load_element(const void* buf, size_t i, DType t) {
  switch (t) {
    case DType::f32:
      return static_cast<const float*>(buf)[i];
    case DType::f64:
      return static_cast<const double*>(buf)[i];
    case DType::i32:
      return static_cast<const int32_t*>(buf)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t*>(buf)[i]);
    case DType::bf16:
      return bf16_to_float(static_cast<const uint16_t*>(buf)[i]);
  }
  return 0;
}

void store_element(void* buf, size_t i, DType t, double v) {
  switch (t) {
    case DType::f32:
      static_cast<float*>(buf)[i] = static_cast<float>(v);
      return;
    case DType::f64:
      static_cast<double*>(buf)[i] = v;
      return;
    case DType::i32:
      static_cast<int32_t*>(buf)[i] = static_cast<int32_t>(v);
      return;
    case DType::i64:
      static_cast<int64_t*>(buf)[i] = static_cast<int64_t>(v);
      return;
    case DType::bf16:
      static_cast<uint16_t*>(buf)[i] = float_to_bf16(static_cast<float>(v));
      return;
  }
}

void finish_avg(void* buf, size_t count, DType t, int ranks) {
  switch (t) {
    case DType::f32: {
      auto* p = static_cast<float*>(buf);
      const float s = 1.0f / static_cast<float>(ranks);
      for (size_t i = 0; i < count; ++i) p[i] *= s;
      return;
    }
    case DType::f64: {
      auto* p = static_cast<double*>(buf);
      for (size_t i = 0; i < count; ++i) p[i] /= ranks;
      return;
    }
    case DType::i32: {
      auto* p = static_cast<int32_t*>(buf);
      for (size_t i = 0; i < count; ++i) p[i] /= ranks;
      return;
    }
    case DType::i64: {
      auto* p = static_cast<int64_t*>(buf);
      for (size_t i = 0; i < count; ++i) p[i] /= ranks;
      return;
    }
    case DType::bf16: {
      auto* p = static_cast<uint16_t*>(buf);
      for (size_t i = 0; i < count; ++i) p[i] = float_to_bf16(bf16_to_float(p[i]) / static_cast<float>(ranks));
      return;
    }
  }
}

}  // namespace loom::comm
