// A tree ensemble compiled into tensor programs (Hummingbird's three strategies) and run as
// a model: predict(X) -> probabilities / values, predict_raw(X) -> margins.
//
//   GEMM (gemm)                  T = (X·A < B); leaf one-hot = (T·C == D); raw = Σ_t onehot_t·E_t.
//                                Dense; best for shallow trees and large batches.
//   TreeTraversal (tt)           gather walk over node tables; any tree shape.
//   PerfectTreeTraversal (ptt)   trees completed to perfect depth, idx = 2·idx + 1 + !left.
//
// kAuto picks per batch size from crossovers measured on this machine (choose_strategy;
// experiments/hummingbird). predict/predict_raw are thread-safe; they use the global pool.
#pragma once

#include <memory>
#include <string>

#include "loom/tensor/tensor.h"
#include "loom/trees/ensemble.h"

namespace loom::trees {

enum class Strategy { kAuto, kGemm, kTreeTraversal, kPerfectTreeTraversal };
const char* strategy_name(Strategy s);         // "auto", "gemm", "tt", "ptt"
Strategy parse_strategy(const std::string& s);  // throws loom::Error naming the choices

// The strategy auto-selection runs for `batch` rows of an ensemble with these statistics.
Strategy choose_strategy(const TreeStats& s, int32_t leaf_dim, int64_t batch);

class TreeModel {
 public:
  // Validates the ensemble and builds the programs `strategy` needs (all candidates for kAuto).
  explicit TreeModel(Ensemble e, Strategy strategy = Strategy::kAuto);
  ~TreeModel();
  TreeModel(TreeModel&&) noexcept;
  TreeModel& operator=(TreeModel&&) noexcept;

  // X: [N, n_features] (f32 or f64, any strides; NaN = missing). Returns f32.
  Tensor predict_raw(const Tensor& X) const;  // [N, n_outputs]
  Tensor predict(const Tensor& X) const;      // [N, n_predictions]
  // The same with a fixed strategy (must have been built: the model's own, or any for kAuto).
  Tensor predict_raw(const Tensor& X, Strategy s) const;

  const Ensemble& ensemble() const;
  const TreeStats& stats() const;
  Strategy strategy() const;                    // as compiled (may be kAuto)
  Strategy strategy_for(int64_t batch) const;   // what a batch of that size runs
  bool has_program(Strategy s) const;

  // A compiled model file: the ensemble IR and the strategy, in the safetensors format
  // (tensors per node array, __metadata__ for the rest). load() validates everything.
  void save(const std::string& path) const;
  static TreeModel load(const std::string& path);
  std::string encode() const;
  static TreeModel decode(const std::string& bytes, const std::string& what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Applies a post transform to raw scores [N, n_outputs].
Tensor apply_post_transform(const Tensor& raw, PostTransform p);

}  // namespace loom::trees
