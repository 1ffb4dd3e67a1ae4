// loom/data: datasets and loaders.
//
// The IDX format of the MNIST family: big-endian header {0, 0, type, ndims}, ndims
// big-endian int32 sizes, then the data. Files may be gzip-compressed (read through zlib).
// Every inconsistency (bad magic, unsupported type, sizes that do not match the bytes,
// truncated gzip) is a loom::Error naming the file.
#pragma once

#include <string>

#include "loom/tensor/tensor.h"

namespace loom::data {

// Reads an IDX file (plain or .gz). Unsigned bytes become i64 when the tensor holds labels
// (1-D) and stay byte values in an f32 tensor otherwise; int32/float32/float64 map directly.
Tensor read_idx(const std::string& path);
// The same from memory (fuzz tests); `what` names the source in errors.
Tensor parse_idx(const std::string& bytes, const std::string& what);
// Reads a file, gunzipping when it starts with the gzip magic.
std::string read_maybe_gzip(const std::string& path);

}  // namespace loom::data
