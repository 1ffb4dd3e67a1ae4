// Model importers: XGBoost's JSON model (Booster.save_model) and Loom's scikit-learn export
// (tools/gen_trees.py, docs/trees.md). Every field is read through `Field`, which knows its
// JSON path, so a malformed file names the exact field that is wrong.
#include <cmath>
#include <nlohmann/json.hpp>

#include "loom/base/error.h"
#include "loom/data/idx.h"
#include "loom/trees/ensemble.h"

namespace loom::trees {
namespace {

using json = nlohmann::json;

class Field {
 public:
  Field(const json& j, std::string path, const std::string& what) : j_(j), path_(std::move(path)), what_(what) {}

  bool has(const char* key) const { return j_.is_object() && j_.contains(key); }
  Field operator[](const char* key) const {
    require(j_.is_object(), "an object");
    auto it = j_.find(key);
    if (it == j_.end()) LOOM_THROW("{}: {}: missing field '{}'", what_, path_, key);
    return Field(*it, path_.empty() ? key : path_ + "." + key, what_);
  }
  size_t size() const {
    require(j_.is_array(), "an array");
    return j_.size();
  }
  Field at(size_t i) const { return Field(j_[i], fmt::format("{}[{}]", path_, i), what_); }

  // XGBoost writes many numbers as strings ("5E-1"); both forms are accepted.
  double number() const {
    if (j_.is_number()) return j_.get<double>();
    if (j_.is_string()) {
      const std::string& s = j_.get_ref<const std::string&>();
      char* end = nullptr;
      double v = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size()) return v;
    }
    if (j_.is_boolean()) return j_.get<bool>() ? 1.0 : 0.0;
    LOOM_THROW("{}: {}: expected a number, got {}", what_, path_, excerpt());
  }
  int64_t integer(int64_t lo, int64_t hi) const {
    double v = number();
    if (!(v == std::floor(v) && v >= static_cast<double>(lo) && v <= static_cast<double>(hi)))
      LOOM_THROW("{}: {}: expected an integer in [{}, {}], got {}", what_, path_, lo, hi, excerpt());
    return static_cast<int64_t>(v);
  }
  std::string string() const {
    require(j_.is_string(), "a string");
    return j_.get<std::string>();
  }
  std::vector<double> numbers() const {
    std::vector<double> out(size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = at(i).number();
    return out;
  }
  std::vector<int32_t> integers(int64_t lo, int64_t hi) const {
    std::vector<int32_t> out(size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int32_t>(at(i).integer(lo, hi));
    return out;
  }
  [[noreturn]] void fail(const std::string& msg) const { LOOM_THROW("{}: {}: {}", what_, path_, msg); }

 private:
  void require(bool ok, const char* kind) const {
    if (!ok) LOOM_THROW("{}: {}: expected {}, got {}", what_, path_, kind, excerpt());
  }
  std::string excerpt() const {
    std::string s = j_.dump();
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
  }
  const json& j_;
  std::string path_;
  const std::string& what_;
};

constexpr int64_t kMaxIndex = (int64_t{1} << 31) - 1;

float logit(double p, const Field& f) {
  if (!(p > 0.0 && p < 1.0)) f.fail(fmt::format("base_score {} must lie in (0, 1) for a logistic objective", p));
  return static_cast<float>(-std::log(1.0 / p - 1.0));
}

Ensemble import_xgboost(const json& root, const std::string& what) {
  Field learner = Field(root, "", what)["learner"];
  Field mp = learner["learner_model_param"];
  Ensemble e;
  e.n_features = static_cast<int32_t>(mp["num_feature"].integer(1, kMaxIndex));
  const int64_t num_class = mp["num_class"].integer(0, 1 << 20);
  if (mp.has("num_target") && mp["num_target"].integer(0, kMaxIndex) > 1)
    mp["num_target"].fail("multi-target models are not supported");
  const double base = mp["base_score"].number();
  const std::string objective = learner["objective"]["name"].string();
  e.source = "xgboost " + objective;

  Field gb = learner["gradient_booster"];
  const std::string booster = gb["name"].string();
  std::vector<double> weights;  // DART scales each tree's output
  Field model = booster == "gbtree" ? gb["model"]
                : booster == "dart" ? gb["gbtree"]["model"]
                                    : (gb["name"].fail("unsupported booster '" + booster + "' (gbtree, dart)"), gb);
  if (booster == "dart") weights = gb["weight_drop"].numbers();

  if (objective == "binary:logistic" || objective == "reg:logistic") {
    e.post = PostTransform::kSigmoid;
    e.base_score = {logit(base, mp["base_score"])};
  } else if (objective == "binary:logitraw") {
    e.base_score = {static_cast<float>(base)};
  } else if (objective == "reg:squarederror" || objective == "reg:linear" || objective == "reg:pseudohubererror" ||
             objective == "reg:absoluteerror" || objective == "reg:squaredlogerror") {
    e.base_score = {static_cast<float>(base)};
  } else if (objective == "multi:softprob" || objective == "multi:softmax") {
    if (num_class < 2) mp["num_class"].fail(fmt::format("{} needs num_class >= 2, got {}", objective, num_class));
    e.n_outputs = static_cast<int32_t>(num_class);
    e.post = objective == "multi:softprob" ? PostTransform::kSoftmax : PostTransform::kArgmax;
    e.base_score.assign(e.n_outputs, static_cast<float>(base));
  } else {
    learner["objective"]["name"].fail("unsupported objective '" + objective +
                                      "' (binary:logistic, binary:logitraw, reg:logistic, reg:squarederror, "
                                      "multi:softprob, multi:softmax)");
  }

  Field trees = model["trees"];
  Field info = model["tree_info"];
  const size_t n_trees = trees.size();
  if (info.size() != n_trees) info.fail(fmt::format("{} entries for {} trees", info.size(), n_trees));
  if (!weights.empty() && weights.size() != n_trees)
    gb["weight_drop"].fail(fmt::format("{} weights for {} trees", weights.size(), n_trees));
  e.tree_output = info.integers(0, e.n_outputs - 1);
  for (size_t ti = 0; ti < n_trees; ++ti) {
    Field tj = trees.at(ti);
    if (tj.has("tree_param") && tj["tree_param"].has("size_leaf_vector") &&
        tj["tree_param"]["size_leaf_vector"].integer(0, kMaxIndex) > 1)
      tj["tree_param"]["size_leaf_vector"].fail("vector leaves are not supported");
    Tree t;
    t.left = tj["left_children"].integers(-1, kMaxIndex);
    t.right = tj["right_children"].integers(-1, kMaxIndex);
    t.feature = tj["split_indices"].integers(0, kMaxIndex);
    std::vector<double> cond = tj["split_conditions"].numbers();
    std::vector<int32_t> dl = tj["default_left"].integers(0, 1);
    const size_t n = t.left.size();
    for (const char* name : {"right_children", "split_indices", "split_conditions", "default_left"})
      if (tj[name].size() != n) tj[name].fail(fmt::format("{} entries, left_children has {}", tj[name].size(), n));
    if (tj.has("split_type")) {
      std::vector<int32_t> st = tj["split_type"].integers(0, 255);
      for (size_t i = 0; i < st.size(); ++i)
        if (st[i] != 0) tj["split_type"].at(i).fail("categorical splits are not supported");
    }
    const double w = weights.empty() ? 1.0 : weights[ti];
    t.threshold.resize(n);
    t.leaf_value.resize(n);
    t.default_left.assign(dl.begin(), dl.end());
    for (size_t i = 0; i < n; ++i) {
      const bool leaf = t.left[i] < 0;
      // A leaf stores its value in split_conditions, compared and summed in float32.
      t.threshold[i] = leaf ? 0.f : static_cast<float>(cond[i]);
      t.leaf_value[i] = leaf ? static_cast<float>(static_cast<float>(cond[i]) * w) : 0.f;
      if (leaf) t.right[i] = -1, t.feature[i] = 0;
    }
    e.trees.push_back(std::move(t));
  }
  return e;
}

Ensemble import_sklearn(const json& root, const std::string& what) {
  Field top(root, "", what);
  const int64_t version = top["version"].integer(0, 1 << 20);
  if (version != 1) top["version"].fail(fmt::format("unsupported version {} (this Loom reads 1)", version));
  const std::string est = top["estimator"].string();
  Ensemble e;
  e.n_features = static_cast<int32_t>(top["n_features"].integer(1, kMaxIndex));
  e.source = "sklearn " + est;
  const bool classifier = est.find("Classifier") != std::string::npos;
  const bool boosting = est.rfind("GradientBoosting", 0) == 0;
  const bool forest = est.rfind("RandomForest", 0) == 0 || est.rfind("ExtraTrees", 0) == 0;
  const bool single = est == "DecisionTreeClassifier" || est == "DecisionTreeRegressor" ||
                      est == "ExtraTreeClassifier" || est == "ExtraTreeRegressor";
  if (!(boosting || forest || single))
    top["estimator"].fail("unsupported estimator '" + est +
                          "' (DecisionTree, RandomForest, ExtraTrees, GradientBoosting; Classifier or Regressor)");
  int32_t n_classes = 0;
  if (classifier) {
    n_classes = static_cast<int32_t>(top["classes"].size());
    if (n_classes < 2) top["classes"].fail(fmt::format("a classifier needs >= 2 classes, got {}", n_classes));
  }
  Field trees = top["trees"];
  const size_t n_trees = trees.size();
  if (n_trees == 0) trees.fail("no trees");
  double scale = forest ? 1.0 / static_cast<double>(n_trees) : 1.0;

  if (boosting) {
    scale = top["learning_rate"].number();
    std::vector<double> init = top["init_raw"].numbers();
    const int32_t k = classifier && n_classes > 2 ? n_classes : 1;
    if (init.size() != static_cast<size_t>(k)) top["init_raw"].fail(fmt::format("{} values, expected {}", init.size(), k));
    e.n_outputs = k;
    e.base_score.assign(init.begin(), init.end());
    e.tree_output = top["tree_class"].integers(0, k - 1);
    if (e.tree_output.size() != n_trees)
      top["tree_class"].fail(fmt::format("{} entries for {} trees", e.tree_output.size(), n_trees));
    if (classifier) {
      const std::string loss = top["loss"].string();
      if (loss != "log_loss" && loss != "deviance")
        top["loss"].fail("unsupported loss '" + loss + "' (log_loss)");
      e.post = k == 1 ? PostTransform::kSigmoidPair : PostTransform::kSoftmax;
    }
  } else if (classifier) {
    e.n_outputs = e.leaf_dim = n_classes;
    e.base_score.assign(n_classes, 0.f);
  } else {
    e.base_score = {0.f};
    e.tree_output.assign(n_trees, 0);
  }

  for (size_t ti = 0; ti < n_trees; ++ti) {
    Field tj = trees.at(ti);
    if (tj["n_outputs"].integer(0, kMaxIndex) != 1) tj["n_outputs"].fail("multi-output trees are not supported");
    Tree t;
    t.left = tj["children_left"].integers(-1, kMaxIndex);
    t.right = tj["children_right"].integers(-1, kMaxIndex);
    std::vector<int32_t> feat = tj["feature"].integers(-2, kMaxIndex);
    std::vector<double> thr = tj["threshold"].numbers();
    Field value = tj["value"];
    const size_t n = t.left.size();
    for (const char* name : {"children_right", "feature", "threshold", "value"})
      if (tj[name].size() != n) tj[name].fail(fmt::format("{} entries, children_left has {}", tj[name].size(), n));
    t.feature.resize(n);
    t.threshold.resize(n);
    t.default_left.assign(n, 0);  // sklearn 1.2 trees see no NaN; NaN goes right like x <= t false
    t.leaf_value.assign(n * e.leaf_dim, 0.f);
    const size_t want = classifier && !boosting ? static_cast<size_t>(n_classes) : 1;
    for (size_t i = 0; i < n; ++i) {
      const bool leaf = t.left[i] < 0;
      if (leaf) {
        t.right[i] = -1;
        std::vector<double> v = value.at(i).numbers();
        if (v.size() != want) value.at(i).fail(fmt::format("{} values, expected {}", v.size(), want));
        if (want == 1) {
          t.leaf_value[i] = static_cast<float>(v[0] * scale);
        } else {
          // sklearn's predict_proba: class weights normalised per leaf (an all-zero leaf stays 0).
          double sum = 0;
          for (double x : v) sum += x;
          if (sum == 0) sum = 1;
          for (size_t k = 0; k < want; ++k) t.leaf_value[i * want + k] = static_cast<float>(v[k] / sum * scale);
        }
      } else {
        if (feat[i] < 0) tj["feature"].at(i).fail(fmt::format("internal node with feature {}", feat[i]));
        t.feature[i] = feat[i];
        t.threshold[i] = strict_threshold_from_le(thr[i]);
      }
    }
    e.trees.push_back(std::move(t));
  }
  return e;
}

}  // namespace

Ensemble parse_model(const std::string& text, const std::string& what, ModelFormat format) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& ex) {
    LOOM_THROW("{}: not valid JSON ({})", what, ex.what());
  }
  if (format == ModelFormat::kAuto) {
    if (root.is_object() && root.contains("learner")) {
      format = ModelFormat::kXGBoost;
    } else if (root.is_object() && root.contains("format") && root["format"] == "loom-sklearn-trees") {
      format = ModelFormat::kSklearn;
    } else {
      LOOM_THROW("{}: unknown model format (expected an XGBoost JSON model with 'learner', or a "
                 "'loom-sklearn-trees' export from tools/gen_trees.py)", what);
    }
  }
  Ensemble e;
  try {
    e = format == ModelFormat::kXGBoost ? import_xgboost(root, what) : import_sklearn(root, what);
  } catch (const json::exception& ex) {  // defensive: Field checks types before any get<>
    LOOM_THROW("{}: malformed model ({})", what, ex.what());
  }
  validate(e, what);
  return e;
}

Ensemble load_model(const std::string& path, ModelFormat format) {
  return parse_model(data::read_maybe_gzip(path), path, format);
}

}  // namespace loom::trees
