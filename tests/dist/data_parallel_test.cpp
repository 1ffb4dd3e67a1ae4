// Horovod-style data parallelism: N in-process workers on shards of a global batch end with
// the same weights as one worker on the whole batch (up to float reduction order), with and
// without tensor fusion and the response cache; steady-state steps skip the coordinator;
// mismatched replicas are a clear error.
#include "loom/dist/data_parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "loom/base/error.h"
#include "loom/base/rng.h"
#include "loom/comm/inproc.h"
#include "loom/models/models.h"
#include "loom/nn/optim.h"
#include "loom/ops/ops.h"

namespace loom::dist {
namespace {

constexpr int64_t kBatch = 30;
constexpr int kSteps = 4;

struct Data {
  Tensor x, y;
};
Data batch(int step) {
  manual_seed(1000 + step);
  Data d{Tensor::randn({kBatch, 784}), Tensor::zeros({kBatch}, DType::kI64)};
  int64_t* y = d.y.data<int64_t>();
  for (int64_t i = 0; i < kBatch; ++i) y[i] = (i * 7 + step) % 10;
  return d;
}

std::map<std::string, Tensor> reference_run(std::map<std::string, Tensor>* init) {
  manual_seed(7);
  nn::ModulePtr m = models::make("mlp");
  *init = m->state_dict();
  for (auto& [k, v] : *init) v = v.clone();
  nn::SGD opt(m->parameters(), nn::SgdOptions{0.1, 0.9, 0.0, false});
  for (int s = 0; s < kSteps; ++s) {
    Data d = batch(s);
    opt.zero_grad();
    cross_entropy((*m)(d.x), d.y).backward();
    opt.step();
  }
  return m->state_dict();
}

// Each rank: its shard's loss weighted by shard/global size * ranks, so the average of the
// ranks' gradients is the gradient of the global batch mean.
std::map<std::string, Tensor> dp_run(int ranks, const std::map<std::string, Tensor>& init, DataParallelOptions o,
                                     std::vector<DataParallelStats>* stats = nullptr) {
  std::map<std::string, Tensor> out;
  std::mutex mu;
  std::vector<nn::ModulePtr> replicas;
  for (int r = 0; r < ranks; ++r) {
    manual_seed(100 + r);  // different initializations: broadcast must fix them
    replicas.push_back(models::make("mlp"));
  }
  replicas[0]->load_state_dict(init);
  if (stats) stats->assign(ranks, {});
  comm::run_inproc(ranks, [&](comm::Transport& t) {
    comm::Communicator comm(t);
    const int r = comm.rank();
    nn::Module& m = *replicas[r];
    nn::SGD opt(m.parameters(), nn::SgdOptions{0.1, 0.9, 0.0, false});
    DataParallel dp(comm, m.named_parameters(), o);
    dp.broadcast_parameters();
    dp.broadcast(opt.state_tensors());
    for (int s = 0; s < kSteps; ++s) {
      Data d = batch(s);
      const int64_t lo = kBatch * r / ranks, hi = kBatch * (r + 1) / ranks;
      Tensor x = slice(d.x, 0, lo, hi), y = slice(d.y, 0, lo, hi);
      opt.zero_grad();
      Tensor loss = cross_entropy(m(x), y) * Tensor::scalar(static_cast<double>(hi - lo) * ranks / kBatch);
      dp.backward(loss);
      opt.step();
      if (stats && s == 0) (*stats)[r] = dp.stats();
    }
    if (r == 0) {
      std::lock_guard g(mu);
      out = m.state_dict();
      if (stats) (*stats)[0].steps = dp.stats().negotiations;  // negotiations after all steps
    }
  });
  return out;
}

double max_diff(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  double worst = 0;
  for (const auto& [k, v] : a) {
    auto va = v.to_vector<float>(), vb = b.at(k).to_vector<float>();
    for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(va[i] - vb[i])));
  }
  return worst;
}

TEST(DataParallel, MatchesOneWorkerOnTheGlobalBatch) {
  std::map<std::string, Tensor> init;
  const auto ref = reference_run(&init);
  for (int ranks : {1, 2, 3}) {
    DataParallelOptions o;
    const double d = max_diff(ref, dp_run(ranks, init, o));
    EXPECT_LT(d, 2e-5) << ranks << " ranks";
  }
  // The check has teeth: skipping the gradient average (fusion buffer never reduced) is far off.
  {
    std::map<std::string, Tensor> init2;
    reference_run(&init2);
    manual_seed(7);
    nn::ModulePtr m = models::make("mlp");
    m->load_state_dict(init2);
    nn::SGD opt(m->parameters(), nn::SgdOptions{0.1, 0.9, 0.0, false});
    for (int s = 0; s < kSteps; ++s) {  // rank 0's shard of 2 alone
      Data d = batch(s);
      opt.zero_grad();
      cross_entropy((*m)(slice(d.x, 0, 0, kBatch / 2)), slice(d.y, 0, 0, kBatch / 2)).backward();
      opt.step();
    }
    EXPECT_GT(max_diff(ref, m->state_dict()), 1e-3);
  }
  DataParallelOptions no_fusion;
  no_fusion.fusion_threshold_bytes = 0;  // every tensor its own allreduce
  no_fusion.cycle_time_ms = 0;
  EXPECT_LT(max_diff(ref, dp_run(2, init, no_fusion)), 2e-5);
  DataParallelOptions no_cache;
  no_cache.response_cache = false;
  no_cache.fusion_threshold_bytes = 64 << 10;  // some fused groups, some single
  EXPECT_LT(max_diff(ref, dp_run(3, init, no_cache)), 2e-5);
}

TEST(DataParallel, ResponseCacheSkipsTheCoordinatorAfterTheFirstStep) {
  std::map<std::string, Tensor> init;
  reference_run(&init);
  std::vector<DataParallelStats> st;
  DataParallelOptions o;
  dp_run(2, init, o, &st);
  const int64_t first_step = st[1].negotiations, all_steps = st[0].steps;
  EXPECT_GE(first_step, 1);
  EXPECT_EQ(all_steps, first_step) << "steps after the first negotiated again";
  o.response_cache = false;
  dp_run(2, init, o, &st);
  EXPECT_GE(st[0].steps, kSteps) << "without the cache every step negotiates";
}

TEST(DataParallel, MismatchedReplicasAreAClearError) {
  try {
    comm::run_inproc(2, [&](comm::Transport& t) {
      comm::Communicator comm(t);
      Tensor w = Tensor::zeros({comm.rank() == 0 ? 4 : 5}).set_requires_grad(true);
      DataParallel dp(comm, {{"w", w}});
      dp.backward(sum(w * w));
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("elements") != std::string::npos || m.find("rejected") != std::string::npos) << m;
  }
}

}  // namespace
}  // namespace loom::dist
