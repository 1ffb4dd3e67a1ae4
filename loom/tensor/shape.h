// Shapes, strides and broadcasting rules (NumPy semantics).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"

// Broadcasts two shapes; throws loom::Error naming `op` and both shapes when they clash.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Resolves a possibly negative axis against rank; throws naming `op` when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const char* op);
// Normalizes, sorts and de-duplicates axes; an empty list means every axis.
std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t rank,
                                    const char* op);

}  // namespace loom
