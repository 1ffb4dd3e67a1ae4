// loom/comm: collective communication over byte buffers. It knows nothing of tensors: a
// buffer is a pointer, an element count and a dtype, so the library builds and tests on its
// own (on loom_base only).
//
// types.h: the element types and reduce operations every collective accepts, and the
// vectorized reduction kernels the algorithms apply to received data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::comm {

enum class DType : uint8_t { f32, f64, i32, i64, bf16 };
enum class ReduceOp : uint8_t { sum, prod, min, max, avg };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* reduce_op_name(ReduceOp op);
DType parse_dtype(const std::string& s);         // "f32", "float", ...; throws on unknown
ReduceOp parse_reduce_op(const std::string& s);  // "sum", "prod", "min", "max", "avg"

// dst[i] = dst[i] (op) src[i] for i < count. avg accumulates like sum; the collective divides
// once at the end (finish_avg). bf16 is reduced in float and rounded to nearest even.
void reduce_into(void* dst, const void* src, size_t count, DType t, ReduceOp op);
// dst[i] = a[i] (op) b[i]: the same without a separate copy (dst may alias a).
void reduce_to(void* dst, const void* a, const void* b, size_t count, DType t, ReduceOp op);
// buf[i] /= ranks (integer types: truncating division, as MPI has no avg and NCCL's ncclAvg
// truncates too).
void finish_avg(void* buf, size_t count, DType t, int ranks);

// Element i of a typed buffer as a double, and back (checks in tests and benchmarks).
double load_element(const void* buf, size_t i, DType t);
void store_element(void* buf, size_t i, DType t, double v);

// bf16 helpers (round to nearest even; NaN stays NaN).
inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace loom::comm
