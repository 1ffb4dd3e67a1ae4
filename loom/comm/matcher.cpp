#include "loom/comm/matcher.h"

#include <fmt/core.h>

#include <cstring>

namespace loom::comm::detail {

void Reduction::apply(char* dst, const char* src, size_t n) const {
  if (!on) {
    if (n) std::memcpy(dst, src, n);
    return;
  }
  reduce_into(dst, src, n / dtype_size(t), t, op);
}

std::string size_mismatch(size_t sent, size_t posted) {
  return fmt::format("message of {} bytes does not match the posted receive of {} bytes", sent, posted);
}

std::vector<char> Matcher::take_buffer(size_t bytes) {
  size_t best = pool_.size();
  for (size_t i = 0; i < pool_.size(); ++i) {
    if (pool_[i].capacity() >= bytes && (best == pool_.size() || pool_[i].capacity() < pool_[best].capacity()))
      best = i;
  }
  if (best == pool_.size()) return std::vector<char>(bytes);
  std::vector<char> b = std::move(pool_[best]);
  pool_.erase(pool_.begin() + static_cast<std::ptrdiff_t>(best));
  pool_bytes_ -= b.capacity();
  b.resize(bytes);  // within capacity: no allocation, no page faults
  return b;
}

void Matcher::give_buffer(std::vector<char>&& b) {
  if (b.capacity() == 0 || pool_bytes_ + b.capacity() > kPoolBytes) return;
  pool_bytes_ += b.capacity();
  pool_.push_back(std::move(b));
}

// Matches an arriving message against the peer's posted receives (mu_ held); with
// `buffer_early`, a message nobody has posted for gets a buffer of its own.
bool Matcher::match(Peer& p, uint32_t tag, size_t bytes, bool buffer_early, Incoming* in) {
  for (auto it = p.posted.begin(); it != p.posted.end(); ++it) {
    if (it->tag != tag) continue;
    in->req = it->req;
    if (it->bytes == bytes) {
      in->dst = static_cast<char*>(it->data);
      in->red = it->red;
    } else {
      in->mismatch = size_mismatch(bytes, it->bytes);
      in->discard = std::make_unique<std::vector<char>>(bytes);
      in->dst = in->discard->data();
    }
    p.posted.erase(it);
    return true;
  }
  if (!buffer_early) return false;
  auto u = std::make_unique<Unexpected>();
  u->tag = tag;
  u->data = take_buffer(bytes);
  in->u = u.get();
  in->dst = u->data.data();
  p.unexpected.push_back(std::move(u));
  return true;
}

bool Matcher::begin_posted(int peer, uint32_t tag, size_t bytes, Incoming* in) {
  std::lock_guard g(mu_);
  Peer& p = peers_[peer];
  // An early message with this tag is older than any new one: it must be matched first.
  for (const auto& u : p.unexpected) {
    if (u->tag == tag) return false;
  }
  return match(p, tag, bytes, false, in);
}

Matcher::Incoming Matcher::begin_message(int peer, uint32_t tag, size_t bytes) {
  Incoming in;
  std::lock_guard g(mu_);
  match(peers_[peer], tag, bytes, true, &in);
  return in;
}

void Matcher::end_message(int peer, Incoming& in) {
  if (in.req) {
    if (in.mismatch.empty()) {
      in.req->complete();
    } else {
      in.req->fail(in.mismatch);
    }
    return;
  }
  std::lock_guard g(mu_);
  Peer& p = peers_[peer];
  in.u->complete = true;
  if (!in.u->req) return;
  Unexpected* u = in.u;
  if (u->user_bytes == u->data.size()) {
    u->red.apply(static_cast<char*>(u->user), u->data.data(), u->data.size());
    u->req->complete();
  } else {
    u->req->fail(size_mismatch(u->data.size(), u->user_bytes));
  }
  for (auto it = p.unexpected.begin(); it != p.unexpected.end(); ++it) {
    if (it->get() == u) {
      give_buffer(std::move(u->data));
      p.unexpected.erase(it);
      break;
    }
  }
}

void Matcher::post_recv(int peer, uint32_t tag, void* data, size_t bytes, const Request& req, Reduction red) {
  std::lock_guard g(mu_);
  Peer& p = peers_[peer];
  for (auto it = p.unexpected.begin(); it != p.unexpected.end(); ++it) {
    Unexpected& u = **it;
    if (u.tag != tag || u.req) continue;
    if (!u.complete) {  // still arriving: finish when it has
      u.user = data, u.user_bytes = bytes, u.req = req, u.red = red;
      return;
    }
    if (u.data.size() == bytes) {
      red.apply(static_cast<char*>(data), u.data.data(), bytes);
      req->complete();
    } else {
      req->fail(size_mismatch(u.data.size(), bytes));
    }
    give_buffer(std::move(u.data));
    p.unexpected.erase(it);
    return;
  }
  if (!p.failed.empty()) {
    req->fail(p.failed);
    return;
  }
  p.posted.push_back({tag, data, bytes, req, red});
}

void Matcher::fail_peer(int peer, const std::string& why) {
  std::lock_guard g(mu_);
  Peer& p = peers_[peer];
  if (p.failed.empty()) p.failed = why;
  for (auto& x : p.posted) x.req->fail(why);
  p.posted.clear();
  for (auto& u : p.unexpected) {
    if (u->req && !u->complete) u->req->fail(why);
  }
}

}  // namespace loom::comm::detail
