#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "loom/base/rng.h"
#include "loom/base/thread_pool.h"
#include "loom/models/models.h"
#include "loom/nn/checkpoint.h"
#include "loom/nn/layers.h"
#include "loom/nn/optim.h"
#include "tests/test_util.h"

namespace loom::nn {
namespace {

TEST(Nn, StateDictNamesFollowPyTorch) {
  auto m = models::make("cnn");
  auto sd = m->state_dict();
  std::vector<std::string> names;
  for (auto& [n, t] : sd) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.bias", "0.weight", "3.bias", "3.weight", "7.bias", "7.weight",
                                             "9.bias", "9.weight"}));
  EXPECT_EQ(sd["7.weight"].shape(), (Shape{128, 3136}));
  EXPECT_EQ(m->num_parameters(), 32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 128 * 10 + 10);
}

// Sequential runs Conv2d + ReLU as one fused convolution: the same outputs and gradients as
// the layers one by one.
TEST(Nn, FusedConvReluEqualsTheLayersOneByOne) {
  manual_seed(5);
  auto m = models::make("cnn");
  auto* seq = dynamic_cast<Sequential*>(m.get());
  ASSERT_NE(seq, nullptr);
  Tensor x = Tensor::randn({3, 1, 28, 28});
  Tensor y = Tensor::from_vector<int64_t>({1, 4, 7}, {3});
  auto run = [&](bool fuse) {
    seq->fuse = fuse;
    for (auto& p : m->parameters()) p.zero_grad();
    Tensor logits = (*m)(x);
    cross_entropy(logits, y).backward();
    std::vector<Tensor> out = {logits.detach()};
    for (auto& p : m->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto fused = run(true), plain = run(false);
  ASSERT_EQ(fused.size(), plain.size());
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_TRUE(testing::all_close(fused[i], plain[i], 1e-6, 1e-5)) << i;
}

TEST(Nn, TinyModelOverfitsOneBatch) {
  manual_seed(3);
  auto m = models::make("mlp");
  Tensor x = Tensor::randn({16, 1, 28, 28});
  Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}, {16});
  AdamW opt(m->parameters(), {1e-3, 0.9, 0.999, 1e-8, 0.0});
  double loss = 0;
  for (int i = 0; i < 200; ++i) {
    Tensor l = cross_entropy((*m)(x), y);
    opt.zero_grad();
    l.backward();
    opt.step();
    loss = l.item_double();
  }
  EXPECT_LT(loss, 1e-3);
}

TEST(Nn, SgdMomentumAndAdamWMatchTheirFormulas) {
  Tensor p = Tensor::from_vector<double>({1.0, -2.0}, {2});
  p.set_requires_grad(true);
  SGD sgd({p}, {0.1, 0.9, 0.01, true});
  for (int step = 0; step < 2; ++step) {
    sum(p * p).backward();  // g = 2p
    sgd.step();
    p.zero_grad();
  }
  // Reference, by hand: nesterov SGD with weight decay.
  double w = 1.0, v = 0;
  for (int step = 0; step < 2; ++step) {
    double g = 2 * w + 0.01 * w;
    v = 0.9 * v + g;
    w -= 0.1 * (g + 0.9 * v);
  }
  EXPECT_NEAR(p.to_vector<double>()[0], w, 1e-12);

  Tensor q = Tensor::from_vector<double>({0.5}, {1});
  q.set_requires_grad(true);
  AdamW adam({q}, {0.01, 0.9, 0.999, 1e-8, 0.1});
  double z = 0.5, m = 0, s = 0;
  for (int t = 1; t <= 3; ++t) {
    sum(q * q * q).backward();  // g = 3q^2
    adam.step();
    q.zero_grad();
    double g = 3 * z * z;
    z -= 0.01 * 0.1 * z;
    m = 0.9 * m + 0.1 * g;
    s = 0.999 * s + 0.001 * g * g;
    z -= 0.01 * (m / (1 - std::pow(0.9, t))) / (std::sqrt(s / (1 - std::pow(0.999, t))) + 1e-8);
  }
  EXPECT_NEAR(q.to_vector<double>()[0], z, 1e-12);
}

TEST(Nn, ClipGradNormAndSchedules) {
  Tensor p = Tensor::from_vector<float>({3, 4}, {2});
  p.set_requires_grad(true);
  sum(p * p * 0.5).backward();  // grad = p, norm 5
  EXPECT_NEAR(clip_grad_norm({p}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(p.grad().to_vector<float>()[0], 0.6, 1e-5);
  LrSchedule cos{"cosine", 1.0, 10};
  EXPECT_NEAR(cos.lr_at(0, 110), 0.1, 1e-12);    // warmup
  EXPECT_NEAR(cos.lr_at(10, 110), 1.0, 1e-12);   // peak
  EXPECT_NEAR(cos.lr_at(60, 110), 0.5, 1e-12);   // half way down
  LrSchedule st{"step", 1.0, 0, 5, 0.5};
  EXPECT_NEAR(st.lr_at(11, 100), 0.25, 1e-12);
  EXPECT_THROW((LrSchedule{"bogus"}.lr_at(0, 1)), Error);
}

TEST(Nn, BatchNormUsesBatchStatsInTrainingAndRunningStatsInEval) {
  manual_seed(5);
  BatchNorm2d bn(3);
  Tensor x = Tensor::randn({8, 3, 4, 4}) * 2.0 + 1.0;
  Tensor y = bn(x);
  EXPECT_NEAR(mean(y).item_double(), 0.0, 1e-5);
  EXPECT_NEAR(var(y, {}, false, 0).item_double(), 1.0, 1e-3);
  auto rm = bn.running_mean.to_vector<float>();
  EXPECT_NEAR(rm[0], 0.1 * mean(slice(x, 1, 0, 1)).item_double(), 1e-5);
  bn.eval();
  Tensor z = bn(x);  // running stats are still close to (0, 1): output close to input
  EXPECT_NEAR(mean(z).item_double(), mean(x).item_double() / std::sqrt(1.0 + 1e-5) - 0.0, 0.5);
}

TEST(Checkpoint, SaveLoadGivesIdenticalPredictions) {
  manual_seed(9);
  auto a = models::make("cnn");
  std::string path = ::testing::TempDir() + "/loom_cnn.safetensors";
  save_safetensors(path, a->state_dict(), {{"model", "cnn"}});
  manual_seed(10);
  auto b = models::make("cnn");
  std::map<std::string, std::string> meta;
  b->load_state_dict(load_safetensors(path, &meta));
  EXPECT_EQ(meta["model"], "cnn");
  Tensor x = Tensor::randn({2, 1, 28, 28});
  EXPECT_EQ((*a)(x).to_vector<float>(), (*b)(x).to_vector<float>());
}

TEST(Checkpoint, FileFollowsTheSafetensorsLayout) {
  // An independent reader: 8-byte LE length, JSON header, raw little-endian data.
  std::map<std::string, Tensor> t = {{"w", Tensor::from_vector<float>({1.5f, -2.f, 3.f}, {3, 1})},
                                     {"ids", Tensor::from_vector<int64_t>({7, 8}, {2})}};
  std::string bytes = encode_safetensors(t, {{"k", "v"}});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["shape"], nlohmann::json({3, 1}));
  EXPECT_EQ(header["ids"]["dtype"], "I64");
  EXPECT_EQ(header["__metadata__"]["k"], "v");
  auto off = header["w"]["data_offsets"].get<std::vector<uint64_t>>();
  float vals[3];
  std::memcpy(vals, bytes.data() + 8 + n + off[0], 12);
  EXPECT_EQ(vals[1], -2.f);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(Checkpoint, LoadStateDictNamesEveryMismatch) {
  auto m = models::make("mlp");
  auto sd = m->state_dict();
  sd.erase("1.bias");
  sd["1.weight"] = Tensor::zeros({3, 3});
  sd["extra"] = Tensor::zeros({1});
  try {
    m->load_state_dict(sd);
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("missing: 1.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("shape mismatch: 1.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected: extra"), std::string::npos) << msg;
  }
}

TEST(Checkpoint, CorruptedFilesAreErrorsNeverCrashes) {
  std::map<std::string, Tensor> t = {{"a", Tensor::randn({4, 5})}, {"b", Tensor::ones({3}, DType::kBool)}};
  const std::string good = encode_safetensors(t);
  std::mt19937 rng(1);
  int errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    if (trial % 2 == 0) {
      bad.resize(rng() % good.size());  // truncation
    } else {
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    try {
      auto r = decode_safetensors(bad, "fuzz");
      for (auto& [n, v] : r) (void)v.numel();
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 1000);  // every truncation fails; most header flips too
  EXPECT_THROW(load_safetensors("/nonexistent/x.safetensors"), Error);
}

}  // namespace
}  // namespace loom::nn

namespace loom::nn {
namespace {

std::vector<double> train_losses(int threads) {
  set_num_threads(threads);
  manual_seed(11);
  auto m = models::make("cnn");
  SGD opt(m->parameters(), {0.05, 0.9, 0.0, false});
  Tensor x = Tensor::randn({32, 1, 28, 28});
  Tensor y = cast(Tensor::rand({32}, DType::kF32, 0, 10), DType::kI64);
  std::vector<double> out;
  for (int i = 0; i < 4; ++i) {
    Tensor l = cross_entropy((*m)(x), y);
    opt.zero_grad();
    l.backward();
    opt.step();
    out.push_back(l.item_double());
  }
  return out;
}

TEST(Nn, SameSeedAndThreadsGiveBitwiseIdenticalLosses) {
  for (int threads : {1, 2}) EXPECT_EQ(train_losses(threads), train_losses(threads)) << threads << " threads";
  set_num_threads(2);
}

}  // namespace
}  // namespace loom::nn
