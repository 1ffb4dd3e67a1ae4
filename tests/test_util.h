// Helpers shared by the test suite.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom::testing {

// Path of a file under the source tree (tests/golden/...).
std::string source_path(const std::string& rel);
nlohmann::json load_json(const std::string& rel);
// {"shape": [...], "dtype": "f32"|"i64"|"bool", "data": [...]} -> Tensor, floats as `fdtype`.
Tensor tensor_from_json(const nlohmann::json& j, DType fdtype = DType::kF32);

// Max |a - b| / (atol + rtol * |b|) over elements; <= 1 means close. Shapes must match.
double closeness(const Tensor& a, const Tensor& b, double atol, double rtol);
::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double atol = 1e-5, double rtol = 1e-5);

// Op configurations shared by the golden, finite-difference and error tests; names match
// tools/gen_golden.py.
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;
const std::map<std::string, OpFn>& op_cases();

}  // namespace loom::testing
