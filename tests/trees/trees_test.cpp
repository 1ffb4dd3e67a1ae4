// loom/trees: importers against XGBoost / scikit-learn golden predictions (tools/gen_trees.py),
// every strategy against a direct walk of the IR, compiled-model files, fuzzed model files.
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <random>

#include "loom/base/cpu.h"
#include "loom/base/error.h"
#include "loom/base/thread_pool.h"
#include "loom/data/idx.h"
#include "loom/ops/ops.h"
#include "loom/trees/compile.h"
#include "loom/trees/ensemble.h"
#include "tests/test_util.h"

namespace loom::trees {
namespace {

using testing::source_path;

// The reference: walk each tree of the IR node by node, in double, per row.
std::vector<double> reference_raw(const Ensemble& e, const float* x) {
  std::vector<double> raw(e.base_score.begin(), e.base_score.end());
  for (size_t ti = 0; ti < e.trees.size(); ++ti) {
    const Tree& t = e.trees[ti];
    int32_t i = 0;
    while (!t.is_leaf(i)) {
      const float v = x[t.feature[i]];
      const bool left = std::isnan(v) ? t.default_left[i] != 0 : v < t.threshold[i];
      i = left ? t.left[i] : t.right[i];
    }
    for (int32_t k = 0; k < e.leaf_dim; ++k)
      raw[e.leaf_dim == 1 ? e.tree_output[ti] : k] += t.leaf_value[i * e.leaf_dim + k];
  }
  return raw;
}

Tensor rows_from_json(const nlohmann::json& rows) {
  const int64_t n = static_cast<int64_t>(rows.size()), f = static_cast<int64_t>(rows[0].size());
  std::vector<float> v;
  for (const auto& r : rows)
    for (const auto& x : r) v.push_back(x.is_null() ? NAN : x.get<float>());
  return Tensor::from_vector(v, {n, f});
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

std::vector<std::string> golden_cases() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(source_path("tests/golden/trees"))) {
    const std::string f = entry.path().filename().string();
    const auto pos = f.find(".golden.json");
    if (pos != std::string::npos) names.push_back(f.substr(0, pos));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string model_path(const std::string& name) {
  std::string p = source_path("tests/golden/trees/" + name + ".model.json");
  return std::filesystem::exists(p) ? p : p + ".gz";
}

struct Config {
  Strategy strategy;
  Isa isa;
  int threads;
};

class TreesGolden : public ::testing::TestWithParam<Config> {
 protected:
  void TearDown() override {
    set_isa_override(Isa::kAvx512);
    set_num_threads(2);
  }
};

TEST_P(TreesGolden, MatchesSourceLibrary) {
  const Config c = GetParam();
  set_isa_override(c.isa);
  set_num_threads(c.threads);
  const auto names = golden_cases();
  ASSERT_GE(names.size(), 15u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    Ensemble e = load_model(model_path(name));
    const TreeStats st = stats(e);
    if (c.strategy == Strategy::kGemm && static_cast<double>(st.n_trees) * st.max_internal * st.max_leaves > 4e7)
      continue;  // the dense GEMM form of the deepest model is 100s of MiB; covered below on a slice
    nlohmann::json g = testing::load_json("tests/golden/trees/" + name + ".golden.json");
    Tensor X = rows_from_json(g["X"]);
    Tensor margin = rows_from_json(g["margin"]), output = rows_from_json(g["output"]);
    TreeModel m(std::move(e), c.strategy);
    EXPECT_LE(max_abs_diff(m.predict_raw(X), margin), 1e-5);
    EXPECT_LE(max_abs_diff(m.predict(X), output), 1e-5);
    // Batch of one row and a ragged batch give the same rows.
    Tensor r1 = m.predict_raw(slice(X, 0, 3, 4));
    EXPECT_LE(max_abs_diff(r1, slice(margin, 0, 3, 4)), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, TreesGolden,
    ::testing::Values(Config{Strategy::kAuto, Isa::kAvx512, 2}, Config{Strategy::kPerfectTreeTraversal, Isa::kAvx512, 1},
                      Config{Strategy::kPerfectTreeTraversal, Isa::kGeneric, 2},
                      Config{Strategy::kTreeTraversal, Isa::kAvx512, 2}, Config{Strategy::kTreeTraversal, Isa::kGeneric, 1},
                      Config{Strategy::kPerfectTreeTraversal, Isa::kAvx2, 2}, Config{Strategy::kTreeTraversal, Isa::kAvx2, 1},
                      Config{Strategy::kGemm, Isa::kAvx512, 2}),
    [](const auto& info) {
      return std::string(strategy_name(info.param.strategy)) + "_" + isa_name(info.param.isa) + "_t" +
             std::to_string(info.param.threads);
    });

// Random ensembles: sparse and perfect trees, scalar and vector leaves, single-leaf trees,
// inputs with NaN, +-inf and values equal to thresholds; every strategy equals the walk.
TEST(Trees, StrategiesEqualReferenceWalk) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 12; ++trial) {
    SCOPED_TRACE(trial);
    const int depth = trial % 6 + (trial == 11 ? 6 : 0);
    const int outputs = trial % 3 + 1;
    Ensemble e = random_ensemble(1 + trial * 3, depth, 7, outputs, trial, trial % 2 ? 0.6 : 1.0, trial % 4 == 3);
    const int64_t n = 1 + trial * 13;
    std::vector<float> x(n * 7);
    std::normal_distribution<float> normal;
    for (auto& v : x) {
      const int r = rng() % 20;
      v = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : normal(rng);
    }
    // Some values exactly on a threshold (x < t is false there).
    for (int64_t i = 0; i < n; i += 3) {
      const Tree& t = e.trees[0];
      if (!t.is_leaf(0)) x[i * 7 + t.feature[0]] = t.threshold[0];
    }
    Tensor X = Tensor::from_vector(x, {n, 7});
    std::vector<float> want;
    for (int64_t r = 0; r < n; ++r)
      for (double v : reference_raw(e, x.data() + r * 7)) want.push_back(static_cast<float>(v));
    Tensor expect = Tensor::from_vector(want, {n, outputs});
    for (Strategy s : {Strategy::kGemm, Strategy::kTreeTraversal, Strategy::kPerfectTreeTraversal}) {
      for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
        SCOPED_TRACE(std::string(strategy_name(s)) + " " + isa_name(isa));
        set_isa_override(isa);
        TreeModel m(e, s);
        EXPECT_LE(max_abs_diff(m.predict_raw(X), expect), 1e-5);
      }
    }
    set_isa_override(Isa::kAvx512);
  }
}

TEST(Trees, GemmStrategyOnDeepModelSlice) {
  // The depth-12 regression model with its first two trees: GEMM's dense form stays small.
  Ensemble e = load_model(model_path("xgb_reg_d12_t10"));
  e.trees.resize(2);
  e.tree_output.resize(2);
  nlohmann::json g = testing::load_json("tests/golden/trees/xgb_reg_d12_t10.golden.json");
  Tensor X = rows_from_json(g["X"]);
  TreeModel gemm(e, Strategy::kGemm), tt(e, Strategy::kTreeTraversal);
  EXPECT_LE(max_abs_diff(gemm.predict_raw(X), tt.predict_raw(X)), 1e-6);
}

TEST(Trees, SklearnThresholdConversionIsExact) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (int i = 0; i < 200000; ++i) {
    const double t = normal(rng) * (i % 7 == 0 ? 1e-30 : 1.0);
    const float ft = static_cast<float>(t);
    const float cand[] = {ft, std::nextafter(ft, -INFINITY), std::nextafter(ft, INFINITY),
                          static_cast<float>(normal(rng))};
    const float s = strict_threshold_from_le(t);
    for (float x : cand) ASSERT_EQ(static_cast<double>(x) <= t, x < s) << "t=" << t << " x=" << x;
  }
}

TEST(Trees, AutoStrategyAndInputChecks) {
  TreeModel m(random_ensemble(8, 4, 5, 1, 1), Strategy::kAuto);
  EXPECT_NE(m.strategy_for(1), Strategy::kAuto);
  EXPECT_THROW(m.predict(Tensor::zeros({3, 4})), Error);
  EXPECT_THROW(m.predict(Tensor::zeros({5})), Error);
  EXPECT_THROW(m.predict(Tensor::zeros({2, 5}, DType::kI64)), Error);
  // f64 and strided input are accepted.
  Tensor X = Tensor::randn({6, 10});
  Tensor strided = slice(X, 1, 0, 10, 2);
  EXPECT_LE(max_abs_diff(m.predict(strided.to(DType::kF64)), m.predict(strided.contiguous())), 0.0);
  EXPECT_EQ(m.predict(Tensor::zeros({0, 5})).size(0), 0);
  try {
    m.predict(Tensor::zeros({3, 4}));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[3, 4]"), std::string::npos) << e.what();
  }
}

TEST(Trees, CompiledFileRoundTrip) {
  for (const std::string name : {"xgb_softprob_d5_t10x3", "sk_rf_clf_t20", "sk_gb_clf_bin"}) {
    SCOPED_TRACE(name);
    TreeModel m(load_model(model_path(name)), Strategy::kTreeTraversal);
    const std::string path = ::testing::TempDir() + "/" + name + ".loomtrees";
    m.save(path);
    TreeModel back = TreeModel::load(path);
    EXPECT_EQ(back.strategy(), Strategy::kTreeTraversal);
    EXPECT_EQ(back.ensemble().post, m.ensemble().post);
    Tensor X = Tensor::randn({40, m.ensemble().n_features});
    EXPECT_EQ(max_abs_diff(back.predict(X), m.predict(X)), 0.0);
    std::filesystem::remove(path);
  }
}

// Every truncation point and random byte flips of a compiled file and of a model file either
// load or throw loom::Error; nothing crashes (ASan checks the reads).
TEST(Trees, FuzzedFilesGiveErrorsNotCrashes) {
  TreeModel m(load_model(model_path("sk_dt_clf_d6")), Strategy::kPerfectTreeTraversal);
  const std::string compiled = m.encode();
  const std::string xgb = data::read_maybe_gzip(model_path("xgb_softmax_d4_t10x4"));
  const std::string sk = data::read_maybe_gzip(model_path("sk_gb_clf_multi"));
  std::mt19937 rng(11);
  int errors = 0, ok = 0;
  auto attempt = [&](auto&& fn) {
    try {
      fn();
      ++ok;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (size_t cut = 0; cut < compiled.size(); cut += 7)
    attempt([&] { TreeModel::decode(compiled.substr(0, cut), "cut"); });
  for (const std::string* text : {&xgb, &sk}) {
    for (int i = 0; i < 200; ++i) attempt([&] { parse_model(text->substr(0, rng() % text->size()), "cut"); });
    for (int i = 0; i < 400; ++i) {
      std::string b = *text;
      for (int k = 0; k < 3; ++k) b[rng() % b.size()] ^= static_cast<char>(1 << (rng() % 8));
      attempt([&] {
        Ensemble e = parse_model(b, "flip");
        TreeModel tm(std::move(e), Strategy::kTreeTraversal);
        tm.predict(Tensor::randn({4, tm.ensemble().n_features}));
      });
    }
  }
  for (int i = 0; i < 300; ++i) {
    std::string b = compiled;
    b[8 + rng() % (b.size() - 8)] ^= static_cast<char>(1 << (rng() % 8));
    attempt([&] {
      TreeModel tm = TreeModel::decode(b, "flip");
      tm.predict(Tensor::randn({4, tm.ensemble().n_features}));
    });
  }
  EXPECT_GT(errors, 400);
  EXPECT_GT(ok, 0);  // some flips only change a value
}

// Targeted corruptions: each names the field at fault.
TEST(Trees, MalformedModelsNameTheField) {
  const std::string xgb = data::read_maybe_gzip(model_path("xgb_binary_d8_t20"));
  auto j = nlohmann::json::parse(xgb);
  auto expect_error = [](const nlohmann::json& doc, const std::string& needle) {
    try {
      parse_model(doc.dump(), "m.json");
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto& tree0 = j["learner"]["gradient_booster"]["model"]["trees"][0];
  {
    auto d = j;
    d["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = 100000;
    expect_error(d, "outside");
  }
  {
    auto d = j;  // a cycle: node 1's left child points back at the root
    auto& t = d["learner"]["gradient_booster"]["model"]["trees"][0];
    t["left_children"][1] = 0;
    expect_error(d, "reached twice");
  }
  {
    auto d = j;
    d["learner"]["gradient_booster"]["model"]["trees"][0]["split_conditions"] = "oops";
    expect_error(d, "trees[0].split_conditions");
  }
  {
    auto d = j;
    d["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 999;
    expect_error(d, "feature 999");
  }
  {
    auto d = j;
    d["learner"]["gradient_booster"]["model"]["trees"][0]["default_left"].erase(0);
    expect_error(d, "default_left");
  }
  {
    auto d = j;
    d["learner"]["objective"]["name"] = "rank:pairwise";
    expect_error(d, "learner.objective.name");
  }
  {
    auto d = j;
    d["learner"]["gradient_booster"]["model"]["tree_info"].push_back(0);
    expect_error(d, "tree_info");
  }
  {
    auto d = j;
    d["learner"]["learner_model_param"]["base_score"] = "1.5";
    expect_error(d, "base_score");
  }
  (void)tree0;
  EXPECT_THROW(parse_model("{\"hello\": 1}", "x.json"), Error);
  EXPECT_THROW(parse_model("[1, 2", "x.json"), Error);
  EXPECT_THROW(load_model("/nonexistent/model.json"), Error);
}

}  // namespace
}  // namespace loom::trees
