// loom/trees: Hummingbird (OSDI'20) — tree ensembles compiled into tensor programs.
//
// The one idea: a forest of decision trees is not a pointer-chasing program but a few
// tensor operations over all trees and all rows at once — three GEMMs (GEMM strategy), a
// gather loop over node tables (TreeTraversal) or an index-arithmetic loop over trees
// completed to perfect depth (PerfectTreeTraversal) — so the runtime that runs networks
// runs trees, batched and vectorized.
//
// This header is the ensemble IR every importer produces and every strategy consumes
// (docs/trees.md). Semantics, fixed for all sources:
//   * a row goes LEFT at an internal node when x[feature] < threshold, compared in float32
//     (XGBoost's rule; scikit-learn's `x <= t` in float64 is converted exactly at import);
//   * a NaN goes left when default_left is set, right otherwise;
//   * raw[r, :] = base_score + sum over trees, in tree order, of the reached leaf's value:
//     scalar leaves (leaf_dim 1) add to column tree_output[t]; vector leaves add a row;
//   * the prediction is post_transform(raw).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::trees {

enum class PostTransform {
  kIdentity,     // regression, averaged class probabilities (random forests)
  kSigmoid,      // one column: P(class 1)            (XGBoost binary:logistic)
  kSigmoidPair,  // two columns: 1-p, p               (sklearn GradientBoostingClassifier, 2 classes)
  kSoftmax,      // one probability per class          (multi:softprob, sklearn GB multiclass)
  kArgmax,       // one column: index of the largest raw score (XGBoost multi:softmax)
};
const char* post_transform_name(PostTransform p);
PostTransform parse_post_transform(const std::string& s);  // throws loom::Error

struct Tree {
  // Node arrays of equal length; node 0 is the root. left/right are -1 (both) at leaves.
  std::vector<int32_t> left, right, feature;
  std::vector<float> threshold;
  std::vector<uint8_t> default_left;
  std::vector<float> leaf_value;  // n_nodes * leaf_dim; read at leaves only

  int32_t n_nodes() const { return static_cast<int32_t>(left.size()); }
  bool is_leaf(int32_t i) const { return left[i] < 0; }
};

struct Ensemble {
  int32_t n_features = 0;
  int32_t n_outputs = 1;  // columns of the raw score
  int32_t leaf_dim = 1;   // 1 or n_outputs
  std::vector<Tree> trees;
  std::vector<int32_t> tree_output;  // per tree; used when leaf_dim == 1
  std::vector<float> base_score;     // n_outputs
  PostTransform post = PostTransform::kIdentity;
  std::string source;  // e.g. "xgboost binary:logistic", "sklearn RandomForestClassifier"

  // Columns of predict() (differs from n_outputs for kSigmoidPair and kArgmax).
  int32_t n_predictions() const;
};

// Throws loom::Error naming `what`, the tree and the node for any inconsistency: array
// lengths, child indices out of range, a node reachable twice (cycles, shared subtrees),
// feature out of range, leaf values missing, tree_output out of range.
void validate(const Ensemble& e, const std::string& what = "ensemble");

struct TreeStats {
  int32_t n_trees = 0, max_depth = 0;
  int64_t internal_nodes = 0, leaves = 0;
  int32_t max_internal = 0, max_leaves = 0;  // per tree
};
// Counts over the nodes reachable from each root. Requires a valid ensemble.
TreeStats stats(const Ensemble& e);
// Depth of each reachable node (root 0), -1 for unreachable nodes.
std::vector<int32_t> node_depths(const Tree& t);

// Importers. The file may be gzip-compressed. Errors name the file and the JSON field
// (e.g. "m.json: learner.gradient_booster.model.trees[3].left_children[7]: ...").
enum class ModelFormat { kAuto, kXGBoost, kSklearn };
Ensemble load_model(const std::string& path, ModelFormat format = ModelFormat::kAuto);
Ensemble parse_model(const std::string& json_text, const std::string& what,
                     ModelFormat format = ModelFormat::kAuto);

// Convert scikit-learn's `x <= t` (float32 x, float64 t) into the IR's `x < t'` in float32:
// the smallest float strictly above every float <= t.
float strict_threshold_from_le(double t);

// A random ensemble for tests and crossover sweeps: trees grown to `depth`, each node split
// with probability `split_prob` below the root (1.0 gives perfect trees).
Ensemble random_ensemble(int32_t n_trees, int32_t depth, int32_t n_features, int32_t n_outputs,
                         uint64_t seed, double split_prob = 1.0, bool vector_leaves = false);

}  // namespace loom::trees
