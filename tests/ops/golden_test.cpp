// Every op's forward output and VJP against PyTorch (tests/golden/ops.json, written by
// tools/gen_golden.py), in f32 so the fast kernels are what is checked.
#include <gtest/gtest.h>

#include "loom/autodiff/transforms.h"
#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/ops/ops.h"
#include "tests/test_util.h"

namespace loom {
namespace {

using testing::all_close;
using testing::tensor_from_json;

void run_golden_case(const nlohmann::json& c) {
  const std::string name = c.at("name");
  SCOPED_TRACE(name);
  auto it = testing::op_cases().find(name);
  ASSERT_NE(it, testing::op_cases().end()) << "no C++ implementation of golden case " << name;
  std::vector<Tensor> inputs;
  for (const auto& j : c.at("inputs")) inputs.push_back(tensor_from_json(j));
  Tensor expected = tensor_from_json(c.at("output"));
  auto [y, pullback] = autodiff::vjp(it->second, inputs);
  EXPECT_TRUE(all_close(y, expected, 1e-4, 1e-4)) << "forward";
  if (y.numel() == 0) return;
  auto grads = pullback(tensor_from_json(c.at("cotangent")));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (c.at("grads")[i].is_null()) continue;
    EXPECT_TRUE(all_close(grads[i], tensor_from_json(c.at("grads")[i]), 2e-4, 2e-4)) << "gradient of input " << i;
  }
}

TEST(Golden, EveryCaseMatchesPyTorch) {
  auto golden = testing::load_json("tests/golden/ops.json");
  ASSERT_GE(golden.at("cases").size(), 60u);
  for (const auto& c : golden.at("cases")) run_golden_case(c);
}

TEST(Golden, EveryCaseMatchesPyTorchOnOneThreadAndPortableKernels) {
  // The same comparisons through the portable GEMM and a single thread.
  set_isa_override(Isa::kGeneric);
  set_num_threads(1);
  auto golden = testing::load_json("tests/golden/ops.json");
  for (const auto& c : golden.at("cases")) run_golden_case(c);
  set_isa_override(Isa::kAvx512);
  set_num_threads(2);
}

TEST(Golden, EveryRegisteredCaseHasGoldenData) {
  auto golden = testing::load_json("tests/golden/ops.json");
  std::set<std::string> names;
  for (const auto& c : golden.at("cases")) names.insert(c.at("name").get<std::string>());
  for (const auto& [name, fn] : testing::op_cases()) EXPECT_TRUE(names.count(name)) << name;
}

}  // namespace
}  // namespace loom
