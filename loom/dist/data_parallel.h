// loom/dist: Horovod-style data parallelism over loom/comm.
//
// Every rank holds a full replica of the model and computes gradients on its shard of the
// global batch; DataParallel averages the gradients across ranks while backward is still
// running:
//  - backward reports each parameter's gradient the moment it is final (the autodiff
//    gradient-ready hook); the tensor is queued for a background thread;
//  - every cycle (cycle_time_ms, Horovod's default 1 ms) the background threads of all ranks
//    agree which queued tensors are ready everywhere. The first time a tensor is seen this is
//    a negotiation with the coordinator on rank 0 (requests with name and size, checked to
//    match; a response naming the tensors all ranks have submitted). The response is cached:
//    from then on one small allreduce of a bit vector (one bit per cached tensor, AND across
//    ranks) replaces the round trip to the coordinator, as Horovod's response cache does;
//  - ready tensors are packed into a fusion buffer up to fusion_threshold_bytes (Horovod's
//    default 128 MiB) and allreduced (average) together, then unpacked into the gradients.
//
//   DataParallel dp(comm, model->named_parameters());
//   dp.broadcast_parameters(); dp.broadcast(opt->state_tensors());
//   for each step: loss = ...; opt->zero_grad(); dp.backward(loss); opt->step();
//
// Spans "dp_negotiate", "dp_allreduce" and "dp_wait" (category "dist") appear in the trace.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/comm/collectives.h"
#include "loom/tensor/tensor.h"

namespace loom::dist {

struct DataParallelOptions {
  size_t fusion_threshold_bytes = size_t{128} << 20;  // Horovod >= 0.21 (HOROVOD_FUSION_THRESHOLD)
  double cycle_time_ms = 1.0;                         // Horovod >= 0.21 (HOROVOD_CYCLE_TIME)
  bool response_cache = true;                         // false: negotiate with rank 0 every cycle
  comm::Algo algo = comm::Algo::automatic;
};

struct DataParallelStats {
  int64_t steps = 0;
  int64_t cycles = 0;        // background cycles (each one allreduce of the ready bits)
  int64_t negotiations = 0;  // cycles that went to the coordinator
  int64_t fused_allreduces = 0;
  int64_t tensors_reduced = 0;
  int64_t bytes_reduced = 0;
  double allreduce_s = 0;  // time in gradient allreduces (background thread)
  double wait_s = 0;       // time the training thread waited for them after backward
};

class DataParallel {
 public:
  // params: the replica's parameters (all ranks: same names, shapes, order), float32.
  DataParallel(comm::Communicator& comm, std::vector<std::pair<std::string, Tensor>> params,
               DataParallelOptions opts = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }

  // Copies rank 0's parameter values (and then any other tensors, e.g. optimizer state) to
  // every rank. Call between steps.
  void broadcast_parameters(int root = 0);
  void broadcast(const std::vector<Tensor>& tensors, int root = 0);

  // loss.backward() with gradients averaged across ranks when it returns. Parameters the
  // loss does not reach get zero gradients (every rank must still take part); an undefined
  // loss (a rank with no samples this step) contributes zeros.
  void backward(const Tensor& loss);
  // The same in two halves, for callers that run backward themselves: begin_step() before
  // backward (on the thread that runs it, inside the returned hook's lifetime), finish_step()
  // after it.
  void begin_step();
  void grad_ready(const Tensor& leaf);
  void finish_step();

  const DataParallelStats& stats() const { return stats_; }

 private:
  void loop();
  void run_step();  // background thread: cycles until every parameter is reduced
  std::vector<int> negotiate(const std::vector<int>& uncached);
  void reduce(const std::vector<int>& ready);

  comm::Communicator& comm_;
  std::vector<std::pair<std::string, Tensor>> params_;
  DataParallelOptions opts_;
  std::unordered_map<const void*, int> index_of_;  // parameter impl -> index

  // Shared between the training thread and the background thread.
  std::mutex mu_;
  std::condition_variable cv_;
  bool step_active_ = false, finishing_ = false, step_done_ = false, stop_ = false;
  std::vector<int> queue_;       // indices made ready by backward, not yet taken
  std::vector<char> submitted_;  // per parameter, this step
  std::exception_ptr error_;

  // Background thread only.
  std::vector<char> cached_;  // response cache: tensors every rank has agreed on before
  std::vector<int> table_;    // coordinator (rank 0): ranks that requested each tensor
  std::vector<float> fusion_;
  std::thread thread_;
  DataParallelStats stats_;
};

}  // namespace loom::dist
