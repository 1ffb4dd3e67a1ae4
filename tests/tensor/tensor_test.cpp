#include <gtest/gtest.h>

#include "loom/ops/ops.h"
#include "loom/base/rng.h"
#include "loom/tensor/allocator.h"
#include "tests/test_util.h"

namespace loom {
namespace {

TEST(Tensor, FactoriesAndMetadata) {
  Tensor t = Tensor::zeros({2, 3}, DType::kF64);
  EXPECT_EQ(t.dim(), 2);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.strides(), (Strides{3, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(Tensor::arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Tensor::full({2}, 2.5).to_vector<float>(), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(Tensor::scalar(3.0).dim(), 0);
  EXPECT_EQ(Tensor::scalar(3.0).item<float>(), 3.0f);
  EXPECT_EQ(Tensor::empty({0, 4}).numel(), 0);
}

TEST(Tensor, ViewsShareStorageWithoutCopies) {
  Tensor x = Tensor::arange(24, DType::kF32);
  Tensor r = reshape(x, {2, 3, 4});
  EXPECT_TRUE(r.shares_storage(x));
  Tensor p = permute(r, {2, 0, 1});
  EXPECT_TRUE(p.shares_storage(x));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  Tensor s = slice(r, 2, 1, 4, 2);  // [2, 3, 2] with step 2
  EXPECT_TRUE(s.shares_storage(x));
  EXPECT_EQ(s.contiguous().to_vector<float>(),
            (std::vector<float>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}));
  Tensor e = expand(Tensor::from_vector<float>({1, 2, 3}, {3, 1}), {3, 4});
  EXPECT_EQ(e.strides()[1], 0);
  EXPECT_EQ(sum(e).item<float>(), 24.0f);
  Tensor u = unsqueeze(x, 0);
  EXPECT_EQ(u.shape(), (Shape{1, 24}));
  EXPECT_TRUE(u.shares_storage(x));
  EXPECT_EQ(squeeze(u).shape(), (Shape{24}));
}

TEST(Tensor, ReshapeOfANonContiguousViewCopiesOnlyWhenNeeded) {
  Tensor x = reshape(Tensor::arange(6, DType::kF32), {2, 3});
  Tensor t = transpose(x, 0, 1);  // [3, 2], not contiguous
  Tensor flat = reshape(t, {6});
  EXPECT_FALSE(flat.shares_storage(x));
  EXPECT_EQ(flat.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor split_last = reshape(t, {3, 2, 1});  // adding a size-1 dim is always a view
  EXPECT_TRUE(split_last.shares_storage(x));
}

TEST(Tensor, ContiguousCloneAndCast) {
  Tensor x = transpose(reshape(Tensor::arange(6, DType::kF64), {2, 3}), 0, 1);
  Tensor c = x.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  Tensor same = c.contiguous();
  EXPECT_TRUE(same.same(c));
  Tensor cl = c.clone();
  EXPECT_FALSE(cl.shares_storage(c));
  EXPECT_EQ(c.to(DType::kI32).to_vector<int32_t>(), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(gt(c, Tensor::scalar(2.0, DType::kF64)).to_vector<bool>(),
            (std::vector<bool>{false, true, false, true, false, true}));
}

TEST(Tensor, PrintingIsReadableAndSummarized) {
  Tensor x = reshape(Tensor::arange(6, DType::kF32), {2, 3});
  EXPECT_EQ(x.str(), "Tensor([[0, 1, 2],\n        [3, 4, 5]], shape=[2, 3], dtype=f32)");
  Tensor big = Tensor::arange(100, DType::kI64);
  EXPECT_EQ(big.str(), "Tensor([0, 1, 2, ..., 97, 98, 99], shape=[100], dtype=i64)");
  EXPECT_EQ(Tensor().str(), "Tensor(undefined)");
}

TEST(Tensor, TypePromotionInBinaryOps) {
  Tensor a = Tensor::ones({2}, DType::kI32), b = Tensor::ones({2}, DType::kF64);
  EXPECT_EQ((a + b).dtype(), DType::kF64);
  EXPECT_EQ((a * 2.0).dtype(), DType::kI32);
  EXPECT_EQ((a * 0.5).dtype(), DType::kF32);
  EXPECT_EQ((a * 0.5).to_vector<float>(), (std::vector<float>{0.5f, 0.5f}));
}

TEST(Tensor, ReductionsOverAnyAxes) {
  Tensor x = reshape(Tensor::arange(24, DType::kF64), {2, 3, 4});
  EXPECT_EQ(sum(x).item<double>(), 276.0);
  EXPECT_EQ(sum(x, {0, 2}).to_vector<double>(), (std::vector<double>{60, 92, 124}));
  EXPECT_EQ(sum(x, {1}).shape(), (Shape{2, 4}));
  EXPECT_EQ(amax(x, {0, 2}, true).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(amax(x, {0, 2}).to_vector<double>(), (std::vector<double>{15, 19, 23}));
  EXPECT_EQ(amin(transpose(x, 0, 2), {1}).to_vector<double>()[0], 0.0);
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), std::vector<int64_t>(8, 2));
  EXPECT_EQ(sum(Tensor::zeros({0, 3}), {0}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(sum(Tensor::ones({5}, DType::kI64)).item<int64_t>(), 5);
  // Leading and trailing axes together (a bias gradient) equal one axis at a time.
  Tensor y = Tensor::randn({3, 4, 5, 6}, DType::kF64);
  EXPECT_TRUE(testing::all_close(sum(y, {0, 2, 3}), sum(sum(sum(y, {3}), {2}), {0}), 1e-12, 1e-12));
  EXPECT_TRUE(testing::all_close(sum(y, {0, 1, 3}, true), sum(sum(sum(y, {3}, true), {1}, true), {0}, true), 1e-12, 1e-12));
  EXPECT_TRUE(testing::all_close(amax(y, {0, 3}), amax(amax(y, {3}), {0}), 0, 0));
  EXPECT_TRUE(testing::all_close(amin(y, {0, 3}), amin(amin(y, {3}), {0}), 0, 0));
  EXPECT_EQ(sum(Tensor::ones({2, 3, 4}, DType::kI32), {0, 2}).to_vector<int32_t>(), (std::vector<int32_t>{8, 8, 8}));
}

TEST(Allocator, ReusesFreedBlocksWithoutNewSystemAllocations) {
  auto& a = CachingAllocator::instance();
  { Tensor warm = Tensor::empty({1 << 20}); }
  auto before = a.stats();
  for (int i = 0; i < 50; ++i) {
    Tensor t = Tensor::empty({1 << 20});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  }
  auto after = a.stats();
  EXPECT_EQ(after.os_allocations, before.os_allocations);
  EXPECT_GE(after.cache_hits, before.cache_hits + 50);
  EXPECT_EQ(CachingAllocator::round_size(1), 64u);
  EXPECT_EQ(CachingAllocator::round_size(5000), 5120u);
  EXPECT_GE(CachingAllocator::round_size(1000001), 1000001u);
  EXPECT_LE(CachingAllocator::round_size(1000001), 1250000u);
}

TEST(Allocator, CacheLimitZeroReturnsMemory) {
  auto& a = CachingAllocator::instance();
  size_t old = a.cache_limit();
  a.set_cache_limit(0);
  auto before = a.stats();
  { Tensor t = Tensor::empty({4096}); }
  EXPECT_EQ(a.stats().os_frees, before.os_frees + 1);
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  a.set_cache_limit(old);
}

TEST(Tensor, DropoutIsDeterministicAndUnbiased) {

  manual_seed(42);
  Tensor x = Tensor::ones({100000});
  Tensor a = dropout(x, 0.3);
  manual_seed(42);
  Tensor b = dropout(x, 0.3);
  EXPECT_TRUE(testing::all_close(a, b, 0, 0));
  double m = mean(a).item_double();
  EXPECT_NEAR(m, 1.0, 0.02);
  double zeros = mean(cast(eq(a, Tensor::scalar(0.0)), DType::kF32)).item_double();
  EXPECT_NEAR(zeros, 0.3, 0.01);
  EXPECT_TRUE(dropout(x, 0.3, /*training=*/false).same(x));
}

}  // namespace
}  // namespace loom
