// Element types of a tensor.
#pragma once

#include <cstddef>
#include <cstdint>

#include "loom/base/error.h"

namespace loom {

enum class DType : uint8_t { kF32 = 0, kF64 = 1, kI32 = 2, kI64 = 3, kBool = 4 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kBool: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kBool: return "bool";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::kF32 || t == DType::kF64; }

// The type a binary op computes in: the wider of the two, floats over integers.
DType promote_types(DType a, DType b);

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::kBool; };

}  // namespace loom

// Calls the generic lambda-like body with `scalar_t` bound to the C++ type of dtype.
#define LOOM_DISPATCH_ALL(dtype, opname, ...)                                          \
  [&] {                                                                                \
    switch (dtype) {                                                                   \
      case ::loom::DType::kF32: { using scalar_t = float; return __VA_ARGS__(); }     \
      case ::loom::DType::kF64: { using scalar_t = double; return __VA_ARGS__(); }    \
      case ::loom::DType::kI32: { using scalar_t = int32_t; return __VA_ARGS__(); }   \
      case ::loom::DType::kI64: { using scalar_t = int64_t; return __VA_ARGS__(); }   \
      case ::loom::DType::kBool: { using scalar_t = bool; return __VA_ARGS__(); }     \
    }                                                                                  \
    LOOM_THROW("{}: unsupported dtype", opname);                                       \
  }()

#define LOOM_DISPATCH_NUMERIC(dtype, opname, ...)                                      \
  [&] {                                                                                \
    switch (dtype) {                                                                   \
      case ::loom::DType::kF32: { using scalar_t = float; return __VA_ARGS__(); }     \
      case ::loom::DType::kF64: { using scalar_t = double; return __VA_ARGS__(); }    \
      case ::loom::DType::kI32: { using scalar_t = int32_t; return __VA_ARGS__(); }   \
      case ::loom::DType::kI64: { using scalar_t = int64_t; return __VA_ARGS__(); }   \
      default: break;                                                                  \
    }                                                                                  \
    LOOM_THROW("{}: dtype {} is not supported (needs a numeric type)", opname,         \
               ::loom::dtype_name(dtype));                                             \
  }()

#define LOOM_DISPATCH_FLOAT(dtype, opname, ...)                                        \
  [&] {                                                                                \
    switch (dtype) {                                                                   \
      case ::loom::DType::kF32: { using scalar_t = float; return __VA_ARGS__(); }     \
      case ::loom::DType::kF64: { using scalar_t = double; return __VA_ARGS__(); }    \
      default: break;                                                                  \
    }                                                                                  \
    LOOM_THROW("{}: dtype {} is not supported (needs f32 or f64)", opname,             \
               ::loom::dtype_name(dtype));                                             \
  }()
