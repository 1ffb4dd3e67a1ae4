// `loom trees compile|predict|info`: tree ensembles (XGBoost JSON, scikit-learn exports) as
// compiled tensor programs (loom/trees, docs/trees.md).
#include <memory>

#include "apps/loom/commands.h"
#include "loom/base/error.h"
#include "loom/base/thread_pool.h"
#include "loom/base/time.h"
#include "loom/data/array_io.h"
#include "loom/trees/compile.h"

namespace loom::cli {
namespace {

trees::ModelFormat parse_format(const std::string& s) {
  if (s == "auto") return trees::ModelFormat::kAuto;
  if (s == "xgboost") return trees::ModelFormat::kXGBoost;
  if (s == "sklearn") return trees::ModelFormat::kSklearn;
  LOOM_THROW("--format: unknown model format '{}' (auto, xgboost, sklearn)", s);
}

bool is_compiled(const std::string& path) {
  // Compiled models are safetensors files; source models are JSON (or gzip-compressed JSON).
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), fclose);
  LOOM_CHECK(f, "cannot open {}", path);
  unsigned char b[9] = {};
  const size_t n = std::fread(b, 1, sizeof(b), f.get());
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return false;
  return n == 9 && b[8] == '{' && b[7] == 0;  // 8-byte little-endian header length, then JSON
}

// A compiled model file, or a source model compiled on the fly.
trees::TreeModel open_model(const std::string& path, trees::Strategy strategy, trees::ModelFormat format) {
  if (is_compiled(path)) {
    trees::TreeModel m = trees::TreeModel::load(path);
    if (strategy == trees::Strategy::kAuto || strategy == m.strategy()) return m;
    return trees::TreeModel(m.ensemble(), strategy);
  }
  return trees::TreeModel(trees::load_model(path, format), strategy);
}

void print_summary(const trees::TreeModel& m) {
  const trees::Ensemble& e = m.ensemble();
  const trees::TreeStats& s = m.stats();
  std::printf("source: %s\n", e.source.c_str());
  std::printf("trees: %d, max depth %d, internal nodes %lld, leaves %lld\n", s.n_trees, s.max_depth,
              static_cast<long long>(s.internal_nodes), static_cast<long long>(s.leaves));
  std::printf("features: %d, outputs: %d (%s leaves), post transform: %s\n", e.n_features, e.n_outputs,
              e.leaf_dim == 1 ? "scalar" : "vector", trees::post_transform_name(e.post));
  std::printf("strategy: %s (batch 1: %s, 100: %s, 10000: %s)\n", trees::strategy_name(m.strategy()),
              trees::strategy_name(m.strategy_for(1)), trees::strategy_name(m.strategy_for(100)),
              trees::strategy_name(m.strategy_for(10000)));
}

struct Options {
  std::string model, output, input, format = "auto", strategy = "auto";
  bool raw = false;
  int threads = 0;
};

}  // namespace

void add_trees(CLI::App& app, Runner& run) {
  auto* trees_cmd = app.add_subcommand("trees", "Tree ensembles compiled into tensor programs (Hummingbird)");
  trees_cmd->require_subcommand(1);
  auto o = std::make_shared<Options>();

  auto* compile = trees_cmd->add_subcommand("compile", "Import an XGBoost / scikit-learn model and compile it");
  compile->add_option("model", o->model, "XGBoost JSON model or tools/gen_trees.py sklearn export (.gz ok)")
      ->required();
  compile->add_option("-o,--output", o->output, "compiled model file to write")->required();
  compile->add_option("--strategy", o->strategy, "auto, gemm, tt or ptt")->capture_default_str();
  compile->add_option("--format", o->format, "auto, xgboost or sklearn")->capture_default_str();
  compile->callback([o, &run] {
    run = [o] {
      trees::TreeModel m(trees::load_model(o->model, parse_format(o->format)), trees::parse_strategy(o->strategy));
      m.save(o->output);
      print_summary(m);
      std::printf("wrote %s\n", o->output.c_str());
      return 0;
    };
  });

  auto* predict = trees_cmd->add_subcommand("predict", "Predict with a compiled (or source) model");
  predict->add_option("model", o->model, "compiled model (loom trees compile) or source model")->required();
  predict->add_option("--input", o->input, "rows as .npy or CSV (empty field / nan = missing)")->required();
  predict->add_option("--output", o->output, "predictions as .npy or CSV (default: CSV on stdout)");
  predict->add_option("--strategy", o->strategy, "override: auto, gemm, tt or ptt")->capture_default_str();
  predict->add_option("--format", o->format, "source model format: auto, xgboost or sklearn")->capture_default_str();
  predict->add_flag("--raw", o->raw, "raw scores (margins) instead of probabilities / values");
  predict->add_option("--threads", o->threads, "threads (default: all)")->check(CLI::Range(1, 1024));
  predict->callback([o, &run] {
    run = [o] {
      if (o->threads > 0) set_num_threads(o->threads);
      trees::TreeModel m = open_model(o->model, trees::parse_strategy(o->strategy), parse_format(o->format));
      Tensor X = data::read_array(o->input);
      if (X.dim() == 1) X = X.as_strided({1, X.size(0)}, {X.size(0), 1}, X.offset());
      const double t0 = now_seconds();
      Tensor y = o->raw ? m.predict_raw(X) : m.predict(X);
      const double dt = now_seconds() - t0;
      data::write_array(o->output.empty() ? "-" : o->output, y);
      std::fprintf(stderr, "loom trees: %lld rows in %.3f ms (%s)\n", static_cast<long long>(X.size(0)), dt * 1e3,
                   trees::strategy_name(m.strategy_for(X.size(0))));
      return 0;
    };
  });

  auto* info = trees_cmd->add_subcommand("info", "Summarize a source or compiled model");
  info->add_option("model", o->model, "model file")->required();
  info->add_option("--format", o->format, "source model format: auto, xgboost or sklearn")->capture_default_str();
  info->callback([o, &run] {
    run = [o] {
      print_summary(open_model(o->model, trees::Strategy::kAuto, parse_format(o->format)));
      return 0;
    };
  });
}

}  // namespace loom::cli
