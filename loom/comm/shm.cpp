#include "loom/comm/shm.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "loom/base/error.h"

namespace loom::comm {

namespace {
constexpr uint64_t kMagic = 0x4c4f4f4d53484d31ull;  // "LOOMSHM1"
// A slot is this header followed directly by the payload, so a message of up to 40 bytes
// travels in one cache line.
struct SlotHeader {
  uint32_t tag;
  uint32_t frag;
  uint64_t msg_bytes;
  uint64_t offset;
};
static_assert(sizeof(SlotHeader) == 24);
// Slot stride: header + payload, rounded to whole cache lines.
size_t slot_stride(size_t slot_bytes) { return (sizeof(SlotHeader) + slot_bytes + 63) & ~size_t{63}; }
}  // namespace

struct ShmTransport::Header {
  std::atomic<uint64_t> magic;
  int32_t size;
  uint32_t slots;
  uint64_t slot_bytes;
  std::atomic<int32_t> attached;
  std::atomic<int32_t> pid[kMaxRanks];
  std::atomic<int32_t> closed[kMaxRanks];
  std::atomic<uint32_t> bell[kMaxRanks];      // bumped by peers after they touch our rings
  std::atomic<uint32_t> sleeping[kMaxRanks];  // rank r sleeps on bell[r]
};

struct ShmTransport::Channel {
  alignas(64) std::atomic<uint64_t> head;  // written by the sender
  alignas(64) std::atomic<uint64_t> tail;  // written by the receiver
  alignas(64) char slots[1];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free);

ShmTransport::Channel* ShmTransport::channel(int from, int to) const {
  const size_t hdr = (sizeof(Header) + 4095) & ~size_t{4095};
  return reinterpret_cast<Channel*>(base_ + hdr + (static_cast<size_t>(from) * size_ + to) * channel_bytes_);
}

ShmTransport::ShmTransport(int rank, int size, Store& store, const std::string& prefix)
    : rank_(rank), size_(size), sendq_(size), incoming_(size), arriving_(size, false), matcher_(size), dead_(size) {
  set_timeout(default_timeout_s());
  cached_tail_.assign(size, 0);
  cached_head_.assign(size, 0);
  LOOM_CHECK(size >= 1 && size <= kMaxRanks, "comm shm: {} ranks (1..{} supported)", size, kMaxRanks);
  LOOM_CHECK(rank >= 0 && rank < size, "comm shm: rank {} out of range for {} ranks", rank, size);
  // Ring size: 16 slots of 64 KiB per ordered pair, fewer for large groups so that the
  // segment stays within ~32 MiB (containers often give /dev/shm only 64 MiB).
  slot_bytes_ = 64 << 10;
  const size_t pairs = static_cast<size_t>(size) * size;
  slots_ = std::clamp<size_t>((size_t{32} << 20) / std::max<size_t>(pairs, 1) / (slot_bytes_ + 64), 4, 16);
  channel_bytes_ = 192 + slots_ * slot_stride(slot_bytes_);
  channel_bytes_ = (channel_bytes_ + 4095) & ~size_t{4095};
  const size_t hdr = (sizeof(Header) + 4095) & ~size_t{4095};
  bytes_ = hdr + pairs * channel_bytes_;
  const double timeout = timeout_s();
  int fd = -1;
  if (rank == 0) {
    std::random_device rd;
    name_ = fmt::format("/loom-{}-{:08x}", getpid(), rd());
    fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    LOOM_CHECK(fd >= 0, "comm shm: shm_open({}): {}", name_, std::strerror(errno));
    // Reserve the memory now (posix_fallocate), so that a full /dev/shm is this clear error
    // rather than a SIGBUS at the first touch of a page later.
    int e = ftruncate(fd, static_cast<off_t>(bytes_)) != 0 ? errno : 0;
    if (e == 0) e = posix_fallocate(fd, 0, static_cast<off_t>(bytes_));
    if (e != 0) {
      close(fd);
      shm_unlink(name_.c_str());
      LOOM_THROW("comm shm: cannot size the segment to {} bytes: {} (is /dev/shm large enough?)", bytes_,
                 std::strerror(e));
    }
  }
  if (rank != 0) {
    name_ = store.get(prefix + "/segment", timeout);
    fd = shm_open(name_.c_str(), O_RDWR, 0600);
    LOOM_CHECK(fd >= 0, "comm shm: rank {} cannot open segment {}: {}", rank, name_, std::strerror(errno));
    struct stat st {};
    fstat(fd, &st);
    LOOM_CHECK(static_cast<size_t>(st.st_size) == bytes_,
               "comm shm: segment {} has {} bytes, expected {} (ranks disagree on the group size?)", name_, st.st_size,
               bytes_);
  }
  void* m = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  LOOM_CHECK(m != MAP_FAILED, "comm shm: mmap of {} bytes: {}", bytes_, std::strerror(errno));
  base_ = static_cast<char*>(m);
  hdr_ = reinterpret_cast<Header*>(base_);
  if (rank == 0) {
    hdr_->size = size;
    hdr_->slots = static_cast<uint32_t>(slots_);
    hdr_->slot_bytes = slot_bytes_;
    hdr_->attached.store(0);
    for (int i = 0; i < kMaxRanks; ++i) {
      hdr_->pid[i].store(0), hdr_->closed[i].store(0), hdr_->bell[i].store(0), hdr_->sleeping[i].store(0);
    }
    hdr_->magic.store(kMagic, std::memory_order_release);
    store.set(prefix + "/segment", name_);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (hdr_->magic.load(std::memory_order_acquire) != kMagic) {
    LOOM_CHECK(std::chrono::steady_clock::now() < deadline, "comm shm: segment {} never initialized", name_);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  LOOM_CHECK(hdr_->size == size, "comm shm: rank {} was told {} ranks, the segment has {}", rank, size, hdr_->size);
  hdr_->pid[rank].store(getpid(), std::memory_order_release);
  hdr_->attached.fetch_add(1, std::memory_order_acq_rel);
  while (hdr_->attached.load(std::memory_order_acquire) < size) {
    if (std::chrono::steady_clock::now() > deadline) {
      if (rank == 0) shm_unlink(name_.c_str());
      LOOM_THROW("comm shm: only {} of {} ranks joined segment {} within {:.0f} s", hdr_->attached.load(), size, name_,
                 timeout);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  oversubscribed_ = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && size > CPU_COUNT(&cpus);
  // Everybody has it mapped: the name can go, so a crash leaves nothing behind in /dev/shm.
  if (rank == 0) shm_unlink(name_.c_str());
}

ShmTransport::~ShmTransport() {
  if (hdr_) hdr_->closed[rank_].store(1, std::memory_order_release);
  if (base_) munmap(base_, bytes_);
}

Request ShmTransport::isend(int peer, uint32_t tag, const void* data, size_t bytes) {
  check_peer_arg("isend", peer, bytes, data);
  Request req = make_request(peer, tag, bytes, true);
  std::lock_guard g(mu_);
  if (!dead_[peer].empty()) {
    req->fail(dead_[peer]);
    return req;
  }
  sendq_[peer].push_back({static_cast<const char*>(data), bytes, 0, tag, req});
  queued_sends_.fetch_add(1, std::memory_order_relaxed);
  push_sends(peer);
  return req;
}

Request ShmTransport::irecv(int peer, uint32_t tag, void* data, size_t bytes) {
  check_peer_arg("irecv", peer, bytes, data);
  Request req = make_request(peer, tag, bytes, false);
  std::lock_guard g(mu_);
  matcher_.post_recv(peer, tag, data, bytes, req);
  pull(peer);
  return req;
}

Request ShmTransport::irecv_reduce(int peer, uint32_t tag, void* data, size_t bytes, DType t, ReduceOp op) {
  Request req = make_reduce_request(peer, tag, data, bytes, t);
  std::lock_guard g(mu_);
  matcher_.post_recv(peer, tag, data, bytes, req, detail::Reduction{true, t, op});
  pull(peer);
  return req;
}

void ShmTransport::ring_bell(int peer) {
  // Dekker-style: the ring update is ordered before the check of `sleeping`, and the peer
  // sets `sleeping` before its last poll of the rings, so one of the two always sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (hdr_->sleeping[peer].load(std::memory_order_relaxed)) {
    hdr_->bell[peer].fetch_add(1, std::memory_order_acq_rel);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&hdr_->bell[peer]), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  }
}

void ShmTransport::idle_wait(int64_t max_ns, int64_t idle_ns) {
  // Yield first (cheap when another rank shares this core and is about to answer); sleep on
  // the doorbell only after a longer stretch without progress (a peer busy computing): a
  // futex wake-up costs tens of microseconds on this VM.
  if (idle_ns < (oversubscribed_ ? 2'000'000 : 200'000)) {
    sched_yield();
    return;
  }
  const uint32_t seen = hdr_->bell[rank_].load(std::memory_order_acquire);
  hdr_->sleeping[rank_].store(1, std::memory_order_seq_cst);
  // Anything that arrived before we announced the sleep is handled now, not after it.
  if (!progress()) {
    timespec ts{static_cast<time_t>(max_ns / 1000000000), static_cast<long>(max_ns % 1000000000)};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&hdr_->bell[rank_]), FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
  hdr_->sleeping[rank_].store(0, std::memory_order_release);
}

bool ShmTransport::push_sends(int peer) {
  auto& q = sendq_[peer];
  if (q.empty()) return false;
  Channel* ch = channel(rank_, peer);
  const size_t stride = slot_stride(slot_bytes_);
  uint64_t& head = cached_head_[peer];  // we are the only writer of head: no shared read
  // The receiver's tail lives on its cache line: read it only when the ring looks full.
  uint64_t& tail = cached_tail_[peer];
  if (head - tail >= slots_) tail = ch->tail.load(std::memory_order_acquire);
  bool moved = false;
  while (!q.empty() && head - tail < slots_) {
    SendOp& op = q.front();
    char* slot = ch->slots + (head % slots_) * stride;
    auto* sh = reinterpret_cast<SlotHeader*>(slot);
    const size_t frag = std::min(slot_bytes_, op.bytes - op.done);
    sh->tag = op.tag;
    sh->frag = static_cast<uint32_t>(frag);
    sh->msg_bytes = op.bytes;
    sh->offset = op.done;
    if (frag) std::memcpy(slot + sizeof(SlotHeader), op.data + op.done, frag);
    ++head;
    ch->head.store(head, std::memory_order_release);
    op.done += frag;
    moved = true;
    if (op.done == op.bytes) {
      op.req->complete();
      q.pop_front();
      queued_sends_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (moved) ring_bell(peer);
  return moved;
}

bool ShmTransport::pull(int peer, bool eager) {
  Channel* ch = channel(peer, rank_);
  const size_t stride = slot_stride(slot_bytes_);
  uint64_t tail = ch->tail.load(std::memory_order_relaxed);
  const uint64_t head = ch->head.load(std::memory_order_acquire);
  bool moved = false;
  while (tail < head) {
    const char* slot = ch->slots + (tail % slots_) * stride;
    const auto* sh = reinterpret_cast<const SlotHeader*>(slot);
    if (sh->offset == 0) {
      if (eager) {
        incoming_[peer] = matcher_.begin_message(peer, sh->tag, sh->msg_bytes);
      } else if (!matcher_.begin_posted(peer, sh->tag, sh->msg_bytes, &incoming_[peer])) {
        break;  // nobody wants it yet: leave it in the ring
      }
      arriving_[peer] = true;
    }
    LOOM_CHECK(arriving_[peer], "comm shm: rank {}: corrupt fragment from rank {}", rank_, peer);
    if (sh->frag) incoming_[peer].red.apply(incoming_[peer].dst + sh->offset, slot + sizeof(SlotHeader), sh->frag);
    const bool last = sh->offset + sh->frag == sh->msg_bytes;
    ++tail;
    ch->tail.store(tail, std::memory_order_release);
    moved = true;
    if (last) {
      arriving_[peer] = false;
      matcher_.end_message(peer, incoming_[peer]);
      incoming_[peer] = {};
    }
  }
  if (moved) ring_bell(peer);  // its sends may be waiting for the slots we freed
  return moved;
}

bool ShmTransport::progress() {
  // The polling loop's fast path: nothing queued to send and no ring has new slots -> no lock.
  if (queued_sends_.load(std::memory_order_relaxed) == 0) {
    bool incoming = false;
    for (int p = 0; p < size_ && !incoming; ++p) {
      if (p == rank_) continue;
      const Channel* ch = channel(p, rank_);
      incoming = ch->head.load(std::memory_order_acquire) != ch->tail.load(std::memory_order_relaxed);
    }
    if (!incoming) return false;
  }
  std::lock_guard g(mu_);
  // Lazy pulls first; after a stretch of polls without progress, drain eagerly (what we wait
  // for may sit behind messages nobody has asked for yet, or the sender may need the slots).
  const bool eager = lazy_misses_ > 64;
  bool moved = false;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    moved |= pull(p, eager);
    moved |= push_sends(p);
  }
  lazy_misses_ = moved || eager ? 0 : lazy_misses_ + 1;
  return moved;
}

bool ShmTransport::peer_dead(int peer, std::string* why) const {
  const int pid = hdr_->pid[peer].load(std::memory_order_acquire);
  if (hdr_->closed[peer].load(std::memory_order_acquire)) {
    *why = fmt::format("rank {} (pid {}) closed its transport", peer, pid);
    return true;
  }
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!stat || !std::getline(stat, line)) {
    *why = fmt::format("rank {} (pid {}) exited", peer, pid);
    return true;
  }
  const auto paren = line.rfind(')');
  if (paren != std::string::npos && paren + 2 < line.size() && (line[paren + 2] == 'Z' || line[paren + 2] == 'X')) {
    *why = fmt::format("rank {} (pid {}) exited", peer, pid);
    return true;
  }
  return false;
}

void ShmTransport::check_peers() {
  std::lock_guard g(mu_);
  // Deliver (or buffer) whatever a finished peer left in the rings first.
  for (int p = 0; p < size_; ++p) {
    if (p != rank_) pull(p, true);
  }
  for (int p = 0; p < size_; ++p) {
    if (p == rank_ || !dead_[p].empty()) continue;
    std::string why;
    if (!peer_dead(p, &why)) continue;
    Channel* in = channel(p, rank_);
    if (in->tail.load() != in->head.load()) continue;  // still data to read
    dead_[p] = why;
    matcher_.fail_peer(p, why);
    for (auto& op : sendq_[p]) op.req->fail(why);
    queued_sends_.fetch_sub(static_cast<int>(sendq_[p].size()), std::memory_order_relaxed);
    sendq_[p].clear();
  }
}

}  // namespace loom::comm
