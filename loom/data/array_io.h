// Numeric arrays from and to files: NumPy's .npy (format versions 1-3; dtypes f4, f8, i4, i8
// little-endian; C or Fortran order) and CSV (one row per line, comma separated; an empty
// field, nan, NaN or NA is a missing value (NaN); a first line that is not numeric is a
// header and skipped). Errors name the file and, for CSV, the line and column.
#pragma once

#include <string>

#include "loom/tensor/tensor.h"

namespace loom::data {

Tensor read_npy(const std::string& path);
Tensor parse_npy(const std::string& bytes, const std::string& what);
void write_npy(const std::string& path, const Tensor& t);  // f32, f64, i32, i64

// CSV -> f32 [rows, cols].
Tensor read_csv(const std::string& path);
Tensor parse_csv(const std::string& text, const std::string& what);
// A 1-D or 2-D tensor as CSV rows ("-" writes to stdout); floats with 9 significant digits.
void write_csv(const std::string& path, const Tensor& t);

// By extension: .npy, else CSV.
Tensor read_array(const std::string& path);
void write_array(const std::string& path, const Tensor& t);

}  // namespace loom::data
