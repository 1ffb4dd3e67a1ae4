#include "loom/profile/trace.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "loom/base/error.h"
#include "loom/base/request_context.h"

namespace loom::profile {
namespace detail {
std::atomic<bool> g_tracing{false};
}

namespace {

struct Event {
  uint64_t ts = 0, dur = 0;
  const char* name = nullptr;
  const char* cat = nullptr;
  char phase = 'X';
  uint64_t id = 0;       // flow id
  uint64_t request = 0;  // Magpie request id (0: none)
  double value = 0;      // counter
  std::string args, dyn_name;
};

// A thread's events: a chain of chunks that never move, written only by the owner. `count`
// is published with release order after a slot is filled, so readers need no lock.
struct Chunk {
  static constexpr size_t kSize = 1024;
  Event slots[kSize];
  std::atomic<Chunk*> next{nullptr};
};

struct ThreadBuffer {
  int tid = 0;
  std::string name;
  std::atomic<uint64_t> epoch{0};  // the tracing session the events belong to (written by the owner)
  std::unique_ptr<Chunk> head = std::make_unique<Chunk>();
  Chunk* tail = head.get();
  std::atomic<size_t> count{0};

  ~ThreadBuffer() {  // iterative: a long chain must not recurse
    Chunk* c = head.release();
    while (c) {
      Chunk* n = c->next.load();
      delete c;
      c = n;
    }
  }
};

std::mutex g_registry_mutex;
std::vector<std::shared_ptr<ThreadBuffer>>& registry() {
  static auto* r = new std::vector<std::shared_ptr<ThreadBuffer>>();  // outlives thread exits
  return *r;
}
std::atomic<uint64_t> g_epoch{1};
std::atomic<uint64_t> g_next_flow{1};
const auto g_clock_origin = std::chrono::steady_clock::now();

ThreadBuffer& my_buffer() {
  thread_local std::shared_ptr<ThreadBuffer> buf;
  if (!buf) {
    buf = std::make_shared<ThreadBuffer>();
    buf->tid = static_cast<int>(::syscall(SYS_gettid));
    buf->epoch = g_epoch.load();
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    registry().push_back(buf);
  }
  return *buf;
}

// Appends an event to the calling thread's buffer (owner only; lock-free).
Event& push() {
  ThreadBuffer& b = my_buffer();
  const uint64_t epoch = g_epoch.load(std::memory_order_acquire);
  if (b.epoch != epoch) {  // a new session: the owner recycles its own chunks
    b.count.store(0, std::memory_order_release);
    b.tail = b.head.get();
    b.epoch = epoch;
  }
  const size_t n = b.count.load(std::memory_order_relaxed);
  if (n > 0 && n % Chunk::kSize == 0) {
    Chunk* next = b.tail->next.load(std::memory_order_acquire);
    if (!next) {
      next = new Chunk();
      b.tail->next.store(next, std::memory_order_release);
    }
    b.tail = next;
  }
  Event& e = b.tail->slots[n % Chunk::kSize];
  e = Event{};
  return e;
}

void commit() {
  ThreadBuffer& b = my_buffer();
  b.count.store(b.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void json_escape(std::string& out, const std::string& s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
}

}  // namespace

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - g_clock_origin).count());
}

void start_tracing() {
  g_epoch.fetch_add(1, std::memory_order_acq_rel);
  detail::g_tracing.store(true, std::memory_order_release);
}

void stop_tracing() { detail::g_tracing.store(false, std::memory_order_release); }

void Span::open(const char* name, const char* cat) {
  active_ = true;
  name_ = name;
  cat_ = cat;
  start_ = now_ns();
}

void Span::set_args(std::string args) {
  if (active_) args_ = std::move(args);
}

void Span::set_name(std::string name) {
  if (active_) dyn_name_ = std::move(name);
}

void Span::close() {
  const uint64_t end = now_ns();
  Event& e = push();
  e.phase = 'X';
  e.ts = start_;
  e.dur = end - start_;
  e.name = name_;
  e.cat = cat_;
  e.request = current_request();
  e.args = std::move(args_);
  e.dyn_name = std::move(dyn_name_);
  commit();
}

namespace {
void simple_event(char phase, const char* name, const char* cat, uint64_t id = 0, std::string args = {}) {
  if (!tracing()) return;
  Event& e = push();
  e.phase = phase;
  e.ts = now_ns();
  e.name = name;
  e.cat = cat;
  e.id = id;
  e.request = current_request();
  e.args = std::move(args);
  commit();
}
}  // namespace

void begin(const char* name, const char* cat) { simple_event('B', name, cat); }
void end() { simple_event('E', nullptr, nullptr); }
void instant(const char* name, const char* cat, std::string args) { simple_event('i', name, cat, 0, std::move(args)); }
uint64_t new_flow_id() { return g_next_flow.fetch_add(1, std::memory_order_relaxed); }
void flow_start(uint64_t id, const char* name) { simple_event('s', name, "flow", id); }
void flow_step(uint64_t id, const char* name) { simple_event('t', name, "flow", id); }
void flow_end(uint64_t id, const char* name) { simple_event('f', name, "flow", id); }

void counter(const char* name, double value) {
  if (!tracing()) return;
  Event& e = push();
  e.phase = 'C';
  e.ts = now_ns();
  e.name = name;
  e.cat = "counter";
  e.value = value;
  commit();
}

void set_thread_name(const std::string& name) {
  ThreadBuffer& b = my_buffer();
  std::lock_guard<std::mutex> lock(g_registry_mutex);  // read by writers of the trace
  b.name = name;
}

size_t event_count() {
  const uint64_t epoch = g_epoch.load();
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  size_t n = 0;
  for (const auto& b : registry())
    if (b->epoch == epoch) n += b->count.load(std::memory_order_acquire);
  return n;
}

std::string trace_json() {
  const uint64_t epoch = g_epoch.load();
  const int pid = static_cast<int>(::getpid());
  std::vector<std::shared_ptr<ThreadBuffer>> bufs;
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    bufs = registry();
    for (const auto& b : bufs) names.push_back(b->name);
  }
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto sep = [&] {
    if (!first) out += ",\n";
    first = false;
  };
  for (size_t bi = 0; bi < bufs.size(); ++bi) {
    const ThreadBuffer& b = *bufs[bi];
    if (b.epoch != epoch) continue;
    const size_t n = b.count.load(std::memory_order_acquire);
    sep();
    out += fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":")", pid, b.tid);
    json_escape(out, names[bi].empty() ? fmt::format("thread {}", b.tid) : names[bi]);
    out += "\"}}";
    // Gather, then order by start time (spans are written when they end; viewers and
    // `loom prof` expect each thread's events in time order, enclosing spans first).
    std::vector<const Event*> ev;
    ev.reserve(n);
    const Chunk* c = b.head.get();
    for (size_t i = 0; i < n; ++i) {
      if (i > 0 && i % Chunk::kSize == 0) c = c->next.load(std::memory_order_acquire);
      ev.push_back(&c->slots[i % Chunk::kSize]);
    }
    std::stable_sort(ev.begin(), ev.end(), [](const Event* x, const Event* y) {
      return x->ts != y->ts ? x->ts < y->ts : x->dur > y->dur;
    });
    for (const Event* e : ev) {
      sep();
      out += fmt::format(R"({{"ph":"{}","pid":{},"tid":{},"ts":{:.3f})", e->phase, pid, b.tid, e->ts / 1000.0);
      if (e->phase == 'X') out += fmt::format(R"(,"dur":{:.3f})", e->dur / 1000.0);
      if (e->name || !e->dyn_name.empty()) {
        out += ",\"name\":\"";
        json_escape(out, e->dyn_name.empty() ? std::string(e->name) : e->dyn_name);
        out += "\"";
      }
      if (e->cat) out += fmt::format(R"(,"cat":"{}")", e->cat);
      if (e->phase == 's' || e->phase == 't' || e->phase == 'f') out += fmt::format(R"(,"id":{})", e->id);
      if (e->phase == 'f' || e->phase == 't') out += R"(,"bp":"e")";
      if (e->phase == 'i') out += R"(,"s":"t")";
      if (e->phase == 'C') {
        out += fmt::format(R"(,"args":{{"value":{}}})", e->value);
      } else if (e->request || !e->args.empty()) {
        out += ",\"args\":{";
        if (e->request) out += fmt::format(R"("request":{})", e->request);
        if (e->request && !e->args.empty()) out += ",";
        out += e->args;
        out += "}";
      }
      out += "}";
    }
  }
  out += "\n]}\n";
  return out;
}

void write_trace(const std::string& path) {
  const std::string json = trace_json();
  std::ofstream out(path, std::ios::binary);
  LOOM_CHECK(out.good(), "cannot write trace {}", path);
  out << json;
  LOOM_CHECK(out.good(), "error writing trace {}", path);
}

}  // namespace loom::profile
