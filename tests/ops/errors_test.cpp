// Bad input raises loom::Error naming the op and the shapes; never a crash.
#include <gtest/gtest.h>

#include "loom/ops/ops.h"

namespace loom {
namespace {

// Expects a loom::Error whose message contains every fragment.
template <typename F>
void expect_error(F f, std::initializer_list<const char*> fragments) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

TEST(OpErrors, BroadcastMismatchNamesOpAndShapes) {
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4});
  expect_error([&] { add(a, b); }, {"add", "[2, 3]", "[4]"});
  expect_error([&] { mul(a, b); }, {"mul", "[2, 3]"});
}

TEST(OpErrors, MatmulInnerDimension) {
  expect_error([] { matmul(Tensor::ones({2, 3}), Tensor::ones({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
}

TEST(OpErrors, WrongDtypes) {
  expect_error([] { exp(Tensor::ones({2}, DType::kI64)); }, {"exp", "i64"});
  expect_error([] { matmul(Tensor::ones({2, 2}, DType::kI32), Tensor::ones({2, 2}, DType::kI32)); }, {"matmul"});
  expect_error([] { gather(Tensor::ones({2, 3}), 1, Tensor::ones({2, 3})); }, {"gather", "integer"});
  expect_error([] { Tensor::ones({2}, DType::kI64).set_requires_grad(true); }, {"require grad"});
}

TEST(OpErrors, AxesOutOfRange) {
  Tensor x = Tensor::ones({2, 3});
  expect_error([&] { sum(x, {2}); }, {"sum", "axis 2", "rank 2"});
  expect_error([&] { softmax(x, -3); }, {"softmax", "axis -3"});
  expect_error([&] { permute(x, {0, 0}); }, {"permute", "repeated"});
  expect_error([&] { sum(x, {1, -1}); }, {"sum", "repeated"});
  expect_error([&] { argmax(x, 5); }, {"argmax", "axis 5"});
}

TEST(OpErrors, ConvAndPoolShapes) {
  expect_error([] { conv2d(Tensor::ones({1, 3, 5, 5}), Tensor::ones({4, 2, 3, 3})); }, {"conv2d", "3 channels"});
  expect_error([] { conv2d(Tensor::ones({1, 3, 2, 2}), Tensor::ones({4, 3, 3, 3})); }, {"conv2d", "does not fit"});
  expect_error([] { conv2d(Tensor::ones({3, 5, 5}), Tensor::ones({4, 3, 3, 3})); }, {"conv2d", "4-D"});
  expect_error([] { max_pool2d(Tensor::ones({1, 1, 4, 4}), 2, 2, 2); }, {"padding"});
  const Conv2dOptions pad1 = Conv2dOptions::make(1, 1);
  expect_error([] { conv2d_max_pool2d(Tensor::ones({1, 3, 5, 5}), Tensor::ones({4, 2, 3, 3}), Tensor(), {}, 2); },
               {"conv2d_max_pool2d", "3 channels"});
  expect_error([] { conv2d_max_pool2d(Tensor::ones({1, 1, 3, 3}), Tensor::ones({2, 1, 3, 3}), Tensor(), {}, 2); },
               {"conv2d_max_pool2d", "does not fit"});
  expect_error([&] { conv2d_max_pool2d(Tensor::ones({1, 1, 4, 4}), Tensor::ones({2, 1, 3, 3}), Tensor::ones({3}), pad1, 2); },
               {"conv2d_max_pool2d", "bias"});
  auto [y, idx] = conv2d_max_pool2d_with_indices(Tensor::ones({1, 1, 4, 4}), Tensor::ones({2, 1, 3, 3}), Tensor(), pad1, 2);
  expect_error([&] { conv2d_pooled_backward_input(Tensor::ones({1, 2, 3, 3}), idx, Tensor::ones({2, 1, 3, 3}), {1, 1, 4, 4}, pad1, 2); },
               {"conv2d_pooled_backward_input", "[1, 2, 3, 3]", "pooled shape [1, 2, 2, 2]"});
  expect_error([&] { conv2d_pooled_backward_weight(Tensor::ones({1, 1, 4, 4}), y, y, {2, 1, 3, 3}, pad1, 2); },
               {"conv2d_pooled_backward_weight", "i64"});
}

TEST(OpErrors, ReshapeAndViews) {
  Tensor x = Tensor::ones({2, 3});
  expect_error([&] { reshape(x, {4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error([&] { reshape(x, {-1, -1}); }, {"reshape", "-1"});
  expect_error([&] { expand(x, {3, 3}); }, {"expand", "[2, 3]", "[3, 3]"});
  expect_error([&] { concat({x, Tensor::ones({3, 2})}, 0); }, {"concat"});
  expect_error([&] { split(x, {1, 1}, 1); }, {"split", "sum to 2"});
}

TEST(OpErrors, IndexOutOfRangeIsAnErrorNotACrash) {
  Tensor w = Tensor::ones({5, 3});
  expect_error([&] { embedding(w, Tensor::from_vector<int64_t>({0, 7}, {2})); }, {"index_select", "7", "size 5"});
  expect_error([&] { gather(w, 0, Tensor::from_vector<int64_t>({9, 0, 0}, {1, 3})); }, {"gather", "9"});
  expect_error([&] { cross_entropy(Tensor::ones({2, 3}), Tensor::from_vector<int64_t>({0, 3}, {2})); }, {"gather", "3"});
}

TEST(OpErrors, LossShapes) {
  expect_error([] { cross_entropy(Tensor::ones({2, 3}), Tensor::ones({3}, DType::kI64)); }, {"cross_entropy", "[2]"});
  expect_error([] { mse_loss(Tensor::ones({2}), Tensor::ones({3})); }, {"mse_loss", "[2]", "[3]"});
  expect_error([] { layer_norm(Tensor::ones({2, 3}), {4}); }, {"layer_norm", "[4]"});
}

TEST(OpErrors, BackwardMisuse) {
  Tensor x = Tensor::ones({3});
  expect_error([&] { sum(x).backward(); }, {"backward", "does not require grad"});
  x.set_requires_grad(true);
  Tensor y = x * 2.0;
  expect_error([&] { y.backward(); }, {"backward", "not a scalar"});
  Tensor z = sum(x * x);
  z.backward();
  expect_error([&] { z.backward(); }, {"already freed"});
}

}  // namespace
}  // namespace loom
