#include "loom/dist/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "loom/autodiff/graph.h"
#include "loom/base/error.h"
#include "loom/base/time.h"
#include "loom/profile/trace.h"

namespace loom::dist {

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

DataParallel::DataParallel(comm::Communicator& comm, std::vector<std::pair<std::string, Tensor>> params,
                           DataParallelOptions opts)
    : comm_(comm), params_(std::move(params)), opts_(opts) {
  LOOM_CHECK(opts_.cycle_time_ms >= 0, "DataParallel: negative cycle time {}", opts_.cycle_time_ms);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    LOOM_CHECK(p.defined() && p.dtype() == DType::kF32, "DataParallel: parameter '{}' must be a float32 tensor",
               params_[i].first);
    index_of_[p.impl()] = static_cast<int>(i);
  }
  submitted_.assign(params_.size(), 0);
  cached_.assign(params_.size(), 0);
  table_.assign(params_.size(), 0);
  thread_ = std::thread([this] { loop(); });
}

DataParallel::~DataParallel() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DataParallel::broadcast_parameters(int root) {
  std::vector<Tensor> ts;
  for (auto& [name, p] : params_) ts.push_back(p);
  broadcast(ts, root);
}

void DataParallel::broadcast(const std::vector<Tensor>& tensors, int root) {
  LOOM_TRACE_SCOPE("dp_broadcast", "dist");
  std::lock_guard g(mu_);
  LOOM_CHECK(!step_active_, "DataParallel: broadcast during a step");
  for (const Tensor& t : tensors) {
    LOOM_CHECK(t.is_contiguous() && t.dtype() == DType::kF32, "DataParallel: broadcast needs contiguous float32");
    comm_.broadcast(t.raw_data(), static_cast<size_t>(t.numel()), comm::DType::f32, root);
  }
}

void DataParallel::backward(const Tensor& loss) {
  begin_step();
  if (loss.defined()) {
    autodiff::GradReadyHookScope hook([this](const Tensor& leaf) { grad_ready(leaf); });
    loss.backward();
  }
  finish_step();
}

void DataParallel::begin_step() {
  {
    std::lock_guard g(mu_);
    LOOM_CHECK(!step_active_, "DataParallel: begin_step while a step is running");
    if (error_) std::rethrow_exception(error_);
    std::fill(submitted_.begin(), submitted_.end(), 0);
    queue_.clear();
    step_active_ = true;
    finishing_ = false;
    step_done_ = false;
  }
  cv_.notify_all();
}

void DataParallel::grad_ready(const Tensor& leaf) {
  auto it = index_of_.find(leaf.impl());
  if (it == index_of_.end()) return;  // not one of ours
  {
    std::lock_guard g(mu_);
    if (!step_active_ || submitted_[it->second]) return;
    submitted_[it->second] = 1;
    queue_.push_back(it->second);
  }
  cv_.notify_all();
}

void DataParallel::finish_step() {
  profile::Span span("dp_wait", "dist");
  const double t0 = now_seconds();
  {
    std::unique_lock lk(mu_);
    LOOM_CHECK(step_active_, "DataParallel: finish_step without begin_step");
    // Backward is over: whatever was not reported gets a (zero) gradient and goes now.
    for (size_t i = 0; i < params_.size(); ++i) {
      if (submitted_[i]) continue;
      Tensor& p = params_[i].second;
      if (!p.grad().defined()) p.impl()->grad = Tensor::zeros(p.shape(), DType::kF32).impl_ptr();
      submitted_[i] = 1;
      queue_.push_back(static_cast<int>(i));
    }
    finishing_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return step_done_ || error_; });
    step_active_ = false;
    if (error_) std::rethrow_exception(error_);
  }
  stats_.wait_s += now_seconds() - t0;
  ++stats_.steps;
}

void DataParallel::loop() {
  profile::set_thread_name(fmt::format("loom-dp-{}", comm_.rank()));
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || (step_active_ && !step_done_); });
      if (stop_) return;
    }
    try {
      run_step();
    } catch (...) {
      std::lock_guard g(mu_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard g(mu_);
      step_done_ = true;
    }
    cv_.notify_all();
  }
}

void DataParallel::run_step() {
  const int n = static_cast<int>(params_.size());
  std::vector<char> pending(n, 0), requested(n, 0), done(n, 0);
  int done_count = 0;
  auto next_cycle = std::chrono::steady_clock::now();
  std::vector<int32_t> bits(n + 1);
  while (done_count < n) {
    // Pace the cycles (Horovod's cycle time), except once backward has finished: then drain.
    {
      std::unique_lock lk(mu_);
      next_cycle += std::chrono::microseconds(static_cast<int64_t>(opts_.cycle_time_ms * 1000));
      cv_.wait_until(lk, next_cycle, [&] { return finishing_ || stop_; });
      if (stop_) return;
      for (int i : queue_) pending[i] = 1;
      queue_.clear();
      const auto now = std::chrono::steady_clock::now();
      if (now > next_cycle) next_cycle = now;
    }
    ++stats_.cycles;
    // One allreduce (min) carries "nobody has a new request for the coordinator" and, per
    // cached tensor, "pending on this rank": the response cache's AND of bit vectors.
    std::vector<int> fresh;  // this rank's new requests for the coordinator
    bits[0] = 1;
    for (int i = 0; i < n; ++i) {
      const bool waiting = pending[i] && !done[i];
      bits[i + 1] = waiting && cached_[i];
      if (waiting && !cached_[i] && !requested[i]) fresh.push_back(i);
    }
    if (!fresh.empty()) bits[0] = 0;
    comm_.allreduce(bits.data(), bits.size(), comm::DType::i32, comm::ReduceOp::min);
    std::vector<int> ready;
    for (int i = 0; i < n; ++i) {
      if (bits[i + 1]) ready.push_back(i);
    }
    if (bits[0] == 0) {
      for (int i : negotiate(fresh)) ready.push_back(i);
      for (int i : fresh) requested[i] = 1;
    }
    reduce(ready);
    for (int i : ready) {
      done[i] = 1;
      ++done_count;
    }
  }
}

// The coordinator round (Horovod's negotiation): every rank reports its new requests (name
// hash and size per tensor); rank 0 checks them against its own, counts which tensors every
// rank has now requested, and broadcasts that list -- which all ranks then cache.
std::vector<int> DataParallel::negotiate(const std::vector<int>& fresh) {
  profile::Span span("dp_negotiate", "dist");
  ++stats_.negotiations;
  const int n = static_cast<int>(params_.size()), p = comm_.size();
  std::vector<int64_t> mine(3 * static_cast<size_t>(n), 0), all(mine.size() * p);
  for (int i : fresh) {
    mine[3 * i] = 1;
    mine[3 * i + 1] = params_[i].second.numel();
    mine[3 * i + 2] = static_cast<int64_t>(fnv1a(params_[i].first));
  }
  comm_.allgather(mine.data(), all.data(), mine.size(), comm::DType::i64);
  std::vector<int32_t> response(n + 1, 0);
  std::string problem;
  if (comm_.rank() == 0) {
    for (int r = 0; r < p && problem.empty(); ++r) {
      const int64_t* req = all.data() + static_cast<size_t>(r) * mine.size();
      for (int i = 0; i < n; ++i) {
        if (!req[3 * i]) continue;
        if (req[3 * i + 1] != params_[i].second.numel() ||
            req[3 * i + 2] != static_cast<int64_t>(fnv1a(params_[i].first))) {
          problem = fmt::format("rank {} submitted tensor #{} with {} elements, rank 0 has '{}' with {} elements", r, i,
                                req[3 * i + 1], params_[i].first, params_[i].second.numel());
          break;
        }
        ++table_[i];
      }
    }
    if (!problem.empty()) {
      response[0] = -1;
    } else {
      for (int i = 0; i < n; ++i) {
        if (table_[i] == p) {
          response[1 + response[0]++] = i;
          table_[i] = 0;
        }
      }
    }
  }
  comm_.broadcast(response.data(), response.size(), comm::DType::i32, 0);
  if (response[0] < 0) {
    if (!problem.empty()) LOOM_THROW("DataParallel: {}", problem);
    LOOM_THROW("DataParallel: rank 0 rejected the tensors of this step (names or sizes differ between ranks)");
  }
  std::vector<int> agreed(response.begin() + 1, response.begin() + 1 + response[0]);
  if (opts_.response_cache) {
    for (int i : agreed) cached_[i] = 1;
  }
  return agreed;
}

void DataParallel::reduce(const std::vector<int>& ready) {
  size_t a = 0;
  while (a < ready.size()) {
    // The next group: as many tensors as fit the fusion threshold (at least one).
    size_t b = a, elems = 0;
    while (b < ready.size()) {
      const size_t e = static_cast<size_t>(params_[ready[b]].second.numel());
      if (b > a && (elems + e) * sizeof(float) > opts_.fusion_threshold_bytes) break;
      elems += e;
      ++b;
    }
    profile::Span span("dp_allreduce", "dist");
    if (span.active()) span.set_args(fmt::format("\"tensors\":{},\"bytes\":{}", b - a, elems * sizeof(float)));
    if (fusion_.size() < elems) fusion_.resize(elems);
    size_t off = 0;
    for (size_t k = a; k < b; ++k) {
      Tensor g = params_[ready[k]].second.grad().contiguous();
      std::memcpy(fusion_.data() + off, g.raw_data(), g.nbytes());
      off += static_cast<size_t>(g.numel());
    }
    const double t0 = now_seconds();
    comm_.allreduce(fusion_.data(), elems, comm::DType::f32, comm::ReduceOp::avg, opts_.algo);
    stats_.allreduce_s += now_seconds() - t0;
    // Fresh gradient tensors: the old ones may share storage with gradients backward is still
    // propagating, so they are replaced, never written in place.
    off = 0;
    for (size_t k = a; k < b; ++k) {
      Tensor& prm = params_[ready[k]].second;
      Tensor g = Tensor::empty(prm.shape(), DType::kF32);
      std::memcpy(g.raw_data(), fusion_.data() + off, g.nbytes());
      off += static_cast<size_t>(g.numel());
      prm.impl()->grad = g.impl_ptr();
    }
    ++stats_.fused_allreduces;
    stats_.tensors_reduced += static_cast<int64_t>(b - a);
    stats_.bytes_reduced += static_cast<int64_t>(elems * sizeof(float));
    a = b;
  }
}

}  // namespace loom::dist
