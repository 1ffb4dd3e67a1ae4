// In-memory datasets and a DataLoader with seeded shuffling and a background prefetch
// thread (the next batch is assembled while the model trains on the current one).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom::data {

struct Dataset {
  Tensor inputs;  // [N, ...] f32
  Tensor labels;  // [N] i64
  int64_t size() const { return labels.shape()[0]; }
};

// Fashion-MNIST (or MNIST) from a directory holding the four standard IDX files (gzipped
// or not): images scaled to [0, 1] then normalized with the given mean/std, shape
// [N, 1, 28, 28]. `train` picks train-* or t10k-*. An empty dir means the Debian package's
// /usr/share/datasets/fashion-mnist.
Dataset load_mnist_like(const std::string& dir, bool train, double mean = 0.2860, double std = 0.3530);
std::string default_fashion_mnist_dir();

struct Batch {
  Tensor inputs, labels;
  // Tracing (loom/profile): the request the batch belongs to and the flow linking the
  // prefetch thread's "load_batch" span to the consumer. 0 when tracing is off.
  uint64_t request = 0, flow = 0;
};

// Iterates a dataset in batches. Shuffling is a Fisher-Yates permutation drawn from Philox
// keyed by (seed, epoch): the same seed gives the same batches in every run, for any
// thread count. With prefetch, a background thread prepares up to two batches ahead.
class DataLoader {
 public:
  DataLoader(const Dataset& ds, int64_t batch_size, bool shuffle, uint64_t seed, bool prefetch = true,
             bool drop_last = false);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts an epoch (joins any unfinished one).
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nullopt at its end.
  std::optional<Batch> next();
  int64_t num_batches() const;

 private:
  Batch make_batch(int64_t b) const;
  void stop_worker();

  const Dataset& ds_;
  int64_t batch_size_;
  bool shuffle_, prefetch_, drop_last_;
  uint64_t seed_;
  std::vector<int64_t> order_;
  int64_t next_batch_ = 0;
  // prefetch state
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stop_ = false, done_ = false;
  std::exception_ptr error_;
};

}  // namespace loom::data
