#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <random>

#include "loom/data/dataset.h"
#include "loom/data/idx.h"
#include "loom/ops/ops.h"
#include "tests/test_util.h"

namespace loom::data {
namespace {

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::string b = {0, 0, 0x08, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  b.append(data.begin(), data.end());
  return b;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = raw.size();
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = out.size();
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(Idx, ParsesImagesAndLabels) {
  Tensor img = parse_idx(idx_bytes({2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255}), "t");
  EXPECT_EQ(img.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(img.dtype(), DType::kF32);
  EXPECT_EQ(img.to_vector<float>().back(), 255.f);
  Tensor lab = parse_idx(idx_bytes({3}, {7, 0, 9}), "t");
  EXPECT_EQ(lab.dtype(), DType::kI64);
  EXPECT_EQ(lab.to_vector<int64_t>(), (std::vector<int64_t>{7, 0, 9}));
}

TEST(Idx, ReadsGzipFiles) {
  std::string path = ::testing::TempDir() + "/loom_labels.idx1.gz";
  std::ofstream(path, std::ios::binary) << gzip(idx_bytes({4}, {1, 2, 3, 4}));
  EXPECT_EQ(read_idx(path).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4}));
  std::string trunc = ::testing::TempDir() + "/loom_trunc.gz";
  std::string z = gzip(idx_bytes({400}, std::vector<uint8_t>(400, 3)));
  std::ofstream(trunc, std::ios::binary) << z.substr(0, z.size() / 2);
  EXPECT_THROW(read_idx(trunc), Error);
}

TEST(Idx, CorruptedInputIsAnErrorNeverACrash) {
  const std::string good = idx_bytes({3, 4, 4}, std::vector<uint8_t>(48, 5));
  std::mt19937 rng(2);
  int errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    if (trial % 2) bad.resize(rng() % good.size());
    else bad[rng() % 16] ^= static_cast<char>(1 << (rng() % 8));
    try {
      parse_idx(bad, "fuzz");
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 1000);
  EXPECT_THROW(read_idx("/nonexistent.idx"), Error);
}

TEST(DataLoader, SeededShufflingIsReproducibleAndCoversEverySample) {
  Dataset ds{reshape(Tensor::arange(100, DType::kF32), {100, 1}), Tensor::arange(100, DType::kI64)};
  auto epoch_labels = [&](bool prefetch, uint64_t seed, int64_t epoch) {
    DataLoader dl(ds, 32, true, seed, prefetch);
    dl.start_epoch(epoch);
    std::vector<int64_t> out;
    int batches = 0;
    while (auto b = dl.next()) {
      auto l = b->labels.to_vector<int64_t>();
      auto x = b->inputs.to_vector<float>();
      for (size_t i = 0; i < l.size(); ++i) EXPECT_EQ(x[i], static_cast<float>(l[i]));  // inputs stay with labels
      out.insert(out.end(), l.begin(), l.end());
      ++batches;
    }
    EXPECT_EQ(batches, 4);
    return out;
  };
  auto a = epoch_labels(true, 7, 0), b = epoch_labels(false, 7, 0), c = epoch_labels(true, 7, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::sort(c.begin(), c.end());
  EXPECT_EQ(c, Tensor::arange(100, DType::kI64).to_vector<int64_t>());
}

TEST(Dataset, FashionMnistFromTheDebianPackage) {
  if (!std::ifstream(default_fashion_mnist_dir() + "/t10k-labels-idx1-ubyte.gz")) GTEST_SKIP() << "dataset not installed";
  Dataset test = load_mnist_like("", false);
  EXPECT_EQ(test.inputs.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(test.labels.shape(), (Shape{10000}));
  EXPECT_EQ(amax(test.labels).item<int64_t>(), 9);
  EXPECT_THROW(load_mnist_like("/nonexistent", false), Error);
}

}  // namespace
}  // namespace loom::data
