#include "loom/comm/inproc.h"

#include <cstring>
#include <exception>
#include <functional>
#include <thread>

#include "loom/base/error.h"

namespace loom::comm {

class InProcTransport final : public Transport {
 public:
  InProcTransport(InProcWorld* w, int rank) : w_(w), rank_(rank) { set_timeout(default_timeout_s()); }
  int rank() const override { return rank_; }
  int size() const override { return w_->size(); }
  const char* kind() const override { return "inproc"; }

  Request isend(int peer, uint32_t tag, const void* data, size_t bytes) override {
    check_peer_arg("isend", peer, bytes, data);
    Request req = make_request(peer, tag, bytes, true);
    if (check_failed(peer, req)) return req;
    InProcWorld::Box& box = *w_->boxes_[peer];
    std::unique_lock lock(box.mu);
    for (auto it = box.recvs.begin(); it != box.recvs.end(); ++it) {
      if (it->peer == rank_ && it->tag == tag) {
        InProcWorld::Pending r = std::move(*it);
        box.recvs.erase(it);
        lock.unlock();
        deliver(data, bytes, r);
        req->complete();
        return req;
      }
    }
    box.sends.push_back({rank_, tag, nullptr, data, bytes, req, {}});
    return req;
  }

  Request irecv(int peer, uint32_t tag, void* data, size_t bytes) override { return post(peer, tag, data, bytes, {}); }
  // The sender's thread (or this one) reduces straight from the sender's buffer.
  Request irecv_reduce(int peer, uint32_t tag, void* data, size_t bytes, DType t, ReduceOp op) override {
    return post(peer, tag, data, bytes, detail::Reduction{true, t, op});
  }

 private:
  Request post(int peer, uint32_t tag, void* data, size_t bytes, detail::Reduction red) {
    check_peer_arg("irecv", peer, bytes, data);
    Request req = make_request(peer, tag, bytes, false);
    if (check_failed(peer, req)) return req;
    InProcWorld::Box& box = *w_->boxes_[rank_];
    std::unique_lock lock(box.mu);
    for (auto it = box.sends.begin(); it != box.sends.end(); ++it) {
      if (it->peer == peer && it->tag == tag) {
        InProcWorld::Pending s = std::move(*it);
        box.sends.erase(it);
        lock.unlock();
        InProcWorld::Pending r{peer, tag, data, nullptr, bytes, req, red};
        deliver(s.send_data, s.bytes, r);
        s.req->complete();
        return req;
      }
    }
    box.recvs.push_back({peer, tag, data, nullptr, bytes, req, red});
    return req;
  }

  // Copies a matched message into the receive and completes it (or fails it on a size
  // mismatch; the send still completes: its data was consumed).
  static void deliver(const void* src, size_t bytes, InProcWorld::Pending& r) {
    if (bytes != r.bytes) {
      r.req->fail(fmt::format("message of {} bytes does not match the posted receive of {} bytes", bytes, r.bytes));
      return;
    }
    r.red.apply(static_cast<char*>(r.recv_data), static_cast<const char*>(src), bytes);
    r.req->complete();
  }

  bool check_failed(int peer, const Request& req) {
    if (!w_->any_failed_.load(std::memory_order_acquire)) return false;
    std::lock_guard g(w_->fail_mu_);
    if (w_->failed_[peer].empty()) return false;
    req->fail(fmt::format("rank {} failed: {}", peer, w_->failed_[peer]));
    return true;
  }

  InProcWorld* w_;
  int rank_;
};

InProcWorld::InProcWorld(int size) {
  LOOM_CHECK(size >= 1, "comm inproc: world size must be >= 1, got {}", size);
  failed_.resize(size);
  for (int r = 0; r < size; ++r) boxes_.push_back(std::make_unique<Box>());
  for (int r = 0; r < size; ++r) transports_.push_back(std::make_unique<InProcTransport>(this, r));
}

Transport& InProcWorld::transport(int rank) {
  LOOM_CHECK(rank >= 0 && rank < size(), "comm inproc: rank {} out of range for a world of {}", rank, size());
  return *transports_[rank];
}

void InProcWorld::fail_rank(int rank, const std::string& why) {
  {
    std::lock_guard g(fail_mu_);
    if (!failed_[rank].empty()) return;
    failed_[rank] = why.empty() ? "unknown error" : why;
    if (first_failed_ < 0) first_failed_ = rank;
    any_failed_.store(true, std::memory_order_release);
  }
  // Fail everything that waits on the failed rank: receives from it, sends to it.
  const std::string msg = fmt::format("rank {} failed: {}", rank, failed_[rank]);
  for (int r = 0; r < size(); ++r) {
    Box& box = *boxes_[r];
    std::lock_guard g(box.mu);
    for (auto it = box.recvs.begin(); it != box.recvs.end();) {
      if (r == rank || it->peer == rank) {
        it->req->fail(msg);
        it = box.recvs.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = box.sends.begin(); it != box.sends.end();) {
      if (r == rank || it->peer == rank) {
        it->req->fail(msg);
        it = box.sends.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void run_inproc(int ranks, const std::function<void(Transport&)>& fn) {
  InProcWorld world(ranks);
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  auto body = [&](int r) {
    try {
      fn(world.transport(r));
    } catch (const std::exception& e) {
      errors[r] = std::current_exception();
      world.fail_rank(r, e.what());
    }
  };
  for (int r = 1; r < ranks; ++r) threads.emplace_back(body, r);
  body(0);
  for (auto& t : threads) t.join();
  // The root cause first: the rank that failed before the others saw its failure.
  if (world.first_failed() >= 0 && errors[world.first_failed()]) std::rethrow_exception(errors[world.first_failed()]);
  for (int r = 0; r < ranks; ++r) {
    if (errors[r]) std::rethrow_exception(errors[r]);
  }
}

}  // namespace loom::comm
