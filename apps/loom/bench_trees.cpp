// `loom bench trees MODEL`: rows/s of each Hummingbird strategy at several batch sizes and
// thread counts, against the source library's own predictor (XGBoost inplace_predict or
// scikit-learn predict_proba, through tools/bench_trees_peer.py and /usr/bin/python3) on the
// same rows in the same command.
// `loom bench trees-crossover`: the strategies on random ensembles over depth x trees x batch,
// the measurements behind trees::choose_strategy.
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "loom/base/error.h"
#include "loom/base/rng.h"
#include "loom/base/thread_pool.h"
#include "loom/data/array_io.h"
#include "loom/ops/ops.h"
#include "loom/trees/compile.h"

namespace loom::cli {
namespace {

using trees::Strategy;

struct TreesOptions {
  BenchCommon common;
  std::string model, data, batches = "1,100,10000,100000", strategies = "auto,gemm,tt,ptt";
  std::string script = "tools/bench_trees_peer.py";
};

std::vector<Strategy> parse_strategies(const std::string& s) {
  std::vector<Strategy> out;
  for (const std::string& item : split_list(s)) out.push_back(trees::parse_strategy(item));
  return out;
}

// Rows [0, batch) of X, tiled when X is shorter.
Tensor batch_rows(const Tensor& X, int64_t batch) {
  if (batch <= X.size(0)) return slice(X, 0, 0, batch).contiguous();
  std::vector<Tensor> parts;
  for (int64_t r = 0; r < batch; r += X.size(0)) parts.push_back(slice(X, 0, 0, std::min(X.size(0), batch - r)));
  return concat(parts, 0);
}

// Seconds per call the GEMM strategy would need at ~60 GFLOP/s per thread: the dense form
// grows with T * I * L, so deep ensembles are skipped rather than run for minutes.
double gemm_estimate_s(const trees::TreeStats& s, int64_t features, int64_t outputs, int64_t batch, int threads) {
  const double flops = 2.0 * s.n_trees * std::max(1, s.max_internal) * (features + s.max_leaves) +
                       2.0 * s.n_trees * s.max_leaves * outputs;
  return flops * static_cast<double>(batch) / (60e9 * threads);
}

int run_bench_trees(const TreesOptions& o) {
  const std::vector<int> threads = parse_int_list(o.common.threads, "--threads");
  const std::vector<int> batches = parse_int_list(o.batches, "--batches");
  const std::vector<Strategy> strategies = parse_strategies(o.strategies);
  trees::Ensemble ensemble = trees::load_model(o.model);
  const bool sklearn = ensemble.source.rfind("sklearn", 0) == 0;
  std::map<Strategy, std::unique_ptr<trees::TreeModel>> models;
  for (Strategy s : strategies) {
    try {
      models[s] = std::make_unique<trees::TreeModel>(ensemble, s);
    } catch (const Error& e) {
      std::printf("# %s: not compiled: %s\n", trees::strategy_name(s), e.what());
    }
  }
  LOOM_CHECK(!models.empty(), "bench trees: no strategy could be compiled");
  const trees::TreeModel& any = *models.begin()->second;
  const trees::TreeStats st = any.stats();
  // The rows: --data, else seeded normal rows with 2% missing values written for the peer.
  std::string data_path = o.data;
  Tensor X;
  if (data_path.empty()) {
    manual_seed(7);
    X = Tensor::randn({100000, ensemble.n_features});
    Tensor drop = lt(Tensor::rand(X.shape()), scalar_like(0.02, X));
    X = where(drop, scalar_like(NAN, X), X).contiguous();
    data_path = (std::filesystem::temp_directory_path() / "loom_bench_trees_X.npy").string();
    data::write_npy(data_path, X);
  } else {
    X = data::read_array(data_path).to(DType::kF32);
  }
  LOOM_CHECK(X.dim() == 2 && X.size(1) == ensemble.n_features, "bench trees: data {} has shape {}, model needs [N, {}]",
             data_path, shape_str(X.shape()), ensemble.n_features);
  if (sklearn) X = where(ne(X, X), scalar_like(0.0, X), X).contiguous();  // sklearn 1.2 trees take no NaN

  std::printf("# model %s: %s, %d trees, max depth %d, %d features, %d outputs\n", o.model.c_str(),
              ensemble.source.c_str(), st.n_trees, st.max_depth, ensemble.n_features, ensemble.n_outputs);
  // Peers first, in one process, so their thread pools are gone before Loom runs.
  std::map<std::pair<int, int>, std::pair<std::string, Timing>> peer;
  if (!o.common.no_peers) {
    std::string out;
    const std::string cmd = fmt::format("/usr/bin/python3 {} {} {} {} {} {}", repo_file(o.script), o.model, data_path,
                                        o.common.threads, o.batches, o.common.repeats);
    nlohmann::json j = run_json_command(cmd, &out);
    if (!j.is_array()) {
      std::printf("# peer run failed: %s\n", out.substr(0, 400).c_str());
    } else {
      for (const auto& r : j) {
        Timing t;
        t.samples = r["seconds"].get<std::vector<double>>();
        peer[{r["threads"].get<int>(), r["batch"].get<int>()}] = {r["peer"].get<std::string>(), t};
      }
    }
  }
  std::printf("%3s %7s %-8s %14s %14s %14s %8s\n", "thr", "batch", "strategy", "loom_rows/s", "loom_med_rows/s",
              "peer_rows/s", "ratio");
  nlohmann::json records = nlohmann::json::array();
  for (int t : threads) {
    set_num_threads(t);
    for (int b : batches) {
      Tensor xb = batch_rows(X, b);
      const auto p = peer.find({t, b});
      const double peer_rate = p != peer.end() ? b / p->second.second.min() : 0;
      for (auto& [s, m] : models) {
        const Strategy runs = m->strategy_for(b);
        if (runs == Strategy::kGemm && gemm_estimate_s(st, ensemble.n_features, ensemble.n_outputs, b, t) > 2.0) {
          std::printf("%3d %7d %-8s %14s   (GEMM form too slow here: ~%.0f s per call estimated)\n", t, b,
                      trees::strategy_name(s), "skipped", gemm_estimate_s(st, ensemble.n_features, ensemble.n_outputs, b, t));
          continue;
        }
        Timing tm = time_each({[&] { m->predict(xb); }}, o.common.repeats)[0];
        const double rate = b / tm.min(), med = b / tm.median();
        const std::string label = s == Strategy::kAuto ? fmt::format("auto:{}", trees::strategy_name(runs))
                                                       : trees::strategy_name(s);
        std::printf("%3d %7d %-8s %14.0f %14.0f %14.0f %8.2f\n", t, b, label.c_str(), rate, med, peer_rate,
                    peer_rate > 0 ? rate / peer_rate : 0.0);
        std::fflush(stdout);
        records.push_back({{"case", fmt::format("{} batch {}", std::filesystem::path(o.model).filename().string(), b)},
                           {"threads", t},
                           {"strategy", label},
                           {"loom_rows_per_s", rate},
                           {"loom_rows_per_s_median", med},
                           {"peer", p != peer.end() ? p->second.first : ""},
                           {"peer_rows_per_s", peer_rate},
                           {"peer_rows_per_s_median", p != peer.end() ? b / p->second.second.median() : 0},
                           {"ratio", peer_rate > 0 ? rate / peer_rate : 0}});
      }
    }
  }
  write_json_records(o.common.json, records, "trees");
  return 0;
}

struct CrossoverOptions {
  BenchCommon common;
  std::string depths = "2,3,4,6,8,10,12,14,16", tree_counts = "10,100,500", batches = "1,100,10000";
  int features = 28;
};

int run_bench_crossover(const CrossoverOptions& o) {
  const std::vector<int> threads = parse_int_list(o.common.threads, "--threads");
  nlohmann::json records = nlohmann::json::array();
  std::printf("%3s %5s %5s %7s %12s %12s %12s  %s\n", "thr", "depth", "trees", "batch", "gemm_rows/s", "tt_rows/s",
              "ptt_rows/s", "best");
  manual_seed(3);
  Tensor X = Tensor::randn({10000, o.features});
  for (int t : threads) {
    set_num_threads(t);
    for (int depth : parse_int_list(o.depths, "--depths")) {
      for (int n : parse_int_list(o.tree_counts, "--trees")) {
        // XGBoost-like shapes: perfect to depth 8; deeper trees split each node with p = 0.8
        // (about 2^depth * 0.8^depth leaves), as trees grown to a depth limit are sparse.
        trees::Ensemble e = trees::random_ensemble(n, depth, o.features, 1, 100 + depth, depth <= 8 ? 1.0 : 0.8);
        const trees::TreeStats st = trees::stats(e);
        for (int b : parse_int_list(o.batches, "--batches")) {
          Tensor xb = batch_rows(X, b);
          double rate[3] = {0, 0, 0};
          const Strategy ss[3] = {Strategy::kGemm, Strategy::kTreeTraversal, Strategy::kPerfectTreeTraversal};
          for (int k = 0; k < 3; ++k) {
            if (ss[k] == Strategy::kGemm && gemm_estimate_s(st, o.features, 1, b, t) > 0.5) continue;
            std::unique_ptr<trees::TreeModel> m;
            try {
              m = std::make_unique<trees::TreeModel>(e, ss[k]);
            } catch (const Error&) {
              continue;  // too large in this form (GEMM's dense matrices, PTT's 2^depth tables)
            }
            rate[k] = b / time_each({[&] { m->predict_raw(xb); }}, o.common.repeats)[0].min();
          }
          const int best = static_cast<int>(std::max_element(rate, rate + 3) - rate);
          std::printf("%3d %5d %5d %7d %12.0f %12.0f %12.0f  %s\n", t, depth, n, b, rate[0], rate[1], rate[2],
                      trees::strategy_name(ss[best]));
          std::fflush(stdout);
          records.push_back({{"threads", t}, {"depth", depth}, {"trees", n}, {"batch", b}, {"gemm_rows_per_s", rate[0]},
                             {"tt_rows_per_s", rate[1]}, {"ptt_rows_per_s", rate[2]},
                             {"best", trees::strategy_name(ss[best])},
                             {"auto", trees::strategy_name(trees::choose_strategy(st, 1, b))}});
        }
      }
    }
  }
  write_json_records(o.common.json, records, "trees-crossover");
  return 0;
}

}  // namespace

void add_bench_trees(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<TreesOptions>();
  o->common.repeats = 3;
  auto* cmd = bench.add_subcommand("trees", "Tree-ensemble rows/s per strategy vs XGBoost / scikit-learn");
  cmd->add_option("model", o->model, "XGBoost JSON model or sklearn export (with its .pkl beside it)")->required();
  add_common_bench_options(*cmd, o->common);
  cmd->add_option("--data", o->data, "rows (.npy or CSV); default: 100k seeded normal rows, 2% missing");
  cmd->add_option("--batches", o->batches, "comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--strategies", o->strategies, "comma-separated: auto, gemm, tt, ptt")->capture_default_str();
  cmd->add_option("--peer-script", o->script, "the peer's timing script")->capture_default_str();
  cmd->callback([o, &run] { run = [o] { return run_bench_trees(*o); }; });

  auto c = std::make_shared<CrossoverOptions>();
  c->common.repeats = 3;
  auto* cross = bench.add_subcommand("trees-crossover", "GEMM vs TT vs PTT on random ensembles (depth x trees x batch)");
  add_common_bench_options(*cross, c->common);
  cross->add_option("--depths", c->depths, "tree depths")->capture_default_str();
  cross->add_option("--trees", c->tree_counts, "tree counts")->capture_default_str();
  cross->add_option("--batches", c->batches, "batch sizes")->capture_default_str();
  cross->add_option("--features", c->features, "input features")->capture_default_str()->check(CLI::Range(1, 100000));
  cross->callback([c, &run] { run = [c] { return run_bench_crossover(*c); }; });
}

}  // namespace loom::cli
