#include "loom/data/dataset.h"

#include <pthread.h>

#include "loom/base/request_context.h"
#include "loom/profile/trace.h"

#include <cstring>
#include <filesystem>

#include "loom/base/error.h"
#include "loom/base/rng.h"
#include "loom/data/idx.h"
#include "loom/ops/ops.h"

namespace loom::data {

std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

namespace {

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    std::string p = dir + "/" + stem + ext;
    if (std::filesystem::exists(p)) return p;
  }
  LOOM_THROW("dataset: {}/{}[.gz] not found (install dataset-fashion-mnist or pass --data-dir)", dir, stem);
}

}  // namespace

Dataset load_mnist_like(const std::string& dir_in, bool train, double mean, double std) {
  const std::string dir = dir_in.empty() ? default_fashion_mnist_dir() : dir_in;
  const std::string prefix = train ? "train" : "t10k";
  Tensor images = read_idx(find_file(dir, prefix + "-images-idx3-ubyte"));
  Tensor labels = read_idx(find_file(dir, prefix + "-labels-idx1-ubyte"));
  LOOM_CHECK(images.dim() == 3, "dataset: {} images must be [N, H, W], got {}", dir, shape_str(images.shape()));
  LOOM_CHECK(labels.dim() == 1 && labels.dtype() == DType::kI64 && labels.shape()[0] == images.shape()[0],
             "dataset: {} has {} images but labels of shape {}", dir, images.shape()[0], shape_str(labels.shape()));
  Dataset ds;
  // Scale bytes to [0, 1], then normalize.
  Tensor x = (images * (1.0 / 255.0) - mean) * (1.0 / std);
  ds.inputs = reshape(x, {images.shape()[0], 1, images.shape()[1], images.shape()[2]}).contiguous();
  ds.labels = labels;
  return ds;
}

DataLoader::DataLoader(const Dataset& ds, int64_t batch_size, bool shuffle, uint64_t seed, bool prefetch,
                       bool drop_last)
    : ds_(ds), batch_size_(batch_size), shuffle_(shuffle), prefetch_(prefetch), drop_last_(drop_last), seed_(seed) {
  LOOM_CHECK(batch_size > 0, "DataLoader: batch size must be positive, got {}", batch_size);
  LOOM_CHECK(ds.inputs.defined() && ds.labels.defined() && ds.inputs.shape()[0] == ds.size(),
             "DataLoader: inputs and labels disagree on the number of samples");
}

DataLoader::~DataLoader() { stop_worker(); }

int64_t DataLoader::num_batches() const {
  const int64_t n = ds_.size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

Batch DataLoader::make_batch(int64_t b) const {
  const int64_t lo = b * batch_size_, hi = std::min(ds_.size(), lo + batch_size_), n = hi - lo;
  Shape s = ds_.inputs.shape();
  s[0] = n;
  Batch batch{Tensor::empty(s, ds_.inputs.dtype()), Tensor::empty({n}, DType::kI64)};
  const size_t row = static_cast<size_t>(ds_.inputs.numel() / std::max<int64_t>(ds_.size(), 1)) *
                     dtype_size(ds_.inputs.dtype());
  const char* src = static_cast<const char*>(ds_.inputs.raw_data());
  char* dst = static_cast<char*>(batch.inputs.raw_data());
  const int64_t* lab = ds_.labels.data<int64_t>();
  int64_t* out = batch.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = order_[lo + i];
    std::memcpy(dst + i * row, src + j * row, row);
    out[i] = lab[j];
  }
  return batch;
}

void DataLoader::stop_worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  queue_.clear();
  stop_ = false;
}

void DataLoader::start_epoch(int64_t epoch) {
  stop_worker();
  const int64_t n = ds_.size();
  order_.resize(n);
  for (int64_t i = 0; i < n; ++i) order_[i] = i;
  if (shuffle_) {
    Philox gen(seed_ ^ 0x5eedda7a, static_cast<uint64_t>(epoch) << 40);
    for (int64_t i = n - 1; i > 0; --i) {
      // Unbiased enough for n < 2^32: 64 random bits per draw.
      uint64_t r = (uint64_t(gen.next_u32()) << 32) | gen.next_u32();
      std::swap(order_[i], order_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
  }
  next_batch_ = 0;
  done_ = false;
  error_ = nullptr;
  if (!prefetch_) return;
  worker_ = std::thread([this] {
    try {
      profile::set_thread_name("data prefetch");
      pthread_setname_np(pthread_self(), "loom-prefetch");
      for (int64_t b = 0; b < num_batches(); ++b) {
        // Each batch is a request (Magpie): loaded here, queued, consumed by a training step.
        Batch batch;
        {
          const uint64_t req = profile::tracing() ? new_request_id() : 0;
          RequestScope scope(req);
          profile::Span span("load_batch", "stage");
          batch = make_batch(b);
          if (span.active()) {
            batch.request = req;
            batch.flow = profile::new_flow_id();
            profile::flow_start(batch.flow, "batch");
          }
        }
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || queue_.size() < 2; });
        if (stop_) return;
        queue_.push_back(std::move(batch));
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  });
}

std::optional<Batch> DataLoader::next() {
  if (!prefetch_) {
    if (next_batch_ >= num_batches()) return std::nullopt;
    return make_batch(next_batch_++);
  }
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  {
    profile::Span span("wait_batch", "data");
    cv_.wait(lock, [&] { return !queue_.empty() || done_; });
    if (error_) std::rethrow_exception(error_);
    if (queue_.empty()) return std::nullopt;
    b = std::move(queue_.front());
    queue_.pop_front();
    if (b.flow) {
      RequestScope scope(b.request);
      profile::flow_end(b.flow, "batch");
    }
  }
  cv_.notify_all();
  return b;
}

}  // namespace loom::data
