// loom/profile: tracing, summaries, sampling and request paths — nvprof, DCPI (SOSP'97) and
// Magpie (HotOS'03) for every Loom module.
//
// The one idea of the tracer: each thread appends events to its own buffer (a chain of
// fixed-size chunks that never move), so recording takes no lock and a reader can collect
// committed events at any time; when tracing is off, every hook is one relaxed atomic load.
//
// Events are written in the Chrome Trace Event Format ({"traceEvents": [...]}, ts/dur in µs),
// which chrome://tracing and Perfetto (ui.perfetto.dev) open:
//   X  complete spans (Span / LOOM_TRACE_SCOPE), strictly nested per thread by construction
//   B/E begin/end pairs (begin()/end(); the caller keeps them nested)
//   i  instants, C counters, s/t/f flow links (causality across threads), M thread names.
// Every span carries the current request id (request_context.h) in args.request when set.
//
// Thread-safety: recording functions are safe from any thread. start_tracing() discards the
// previous events; collect/write may run while other threads record (they see what was
// committed).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace loom::profile {

namespace detail {
extern std::atomic<bool> g_tracing;
}
inline bool tracing() { return detail::g_tracing.load(std::memory_order_relaxed); }
void start_tracing();  // clears earlier events
void stop_tracing();

uint64_t now_ns();  // monotonic, the tracer's clock

// A complete ("X") event from construction to destruction; no-op while tracing is off.
class Span {
 public:
  Span(const char* name, const char* cat) {
    if (tracing()) open(name, cat);
  }
  ~Span() {
    if (active_) close();
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  bool active() const { return active_; }
  // JSON object members without braces, e.g. "\"shape\":[2,3]"; ignored when inactive.
  void set_args(std::string args);
  void set_name(std::string name);  // a dynamic name (copied)

 private:
  void open(const char* name, const char* cat);
  void close();
  bool active_ = false;
  const char* name_ = nullptr;
  const char* cat_ = nullptr;
  uint64_t start_ = 0;
  std::string args_, dyn_name_;
};

#define LOOM_TRACE_CONCAT2(a, b) a##b
#define LOOM_TRACE_CONCAT(a, b) LOOM_TRACE_CONCAT2(a, b)
#define LOOM_TRACE_SCOPE(name, cat) ::loom::profile::Span LOOM_TRACE_CONCAT(loom_span_, __LINE__)(name, cat)

void begin(const char* name, const char* cat);
void end();
void instant(const char* name, const char* cat, std::string args = {});
void counter(const char* name, double value);
// Flow links: start inside the producer's span, end inside the consumer's span; the viewer
// draws an arrow between the two slices. `id` must be unique per link (new_flow_id()).
uint64_t new_flow_id();
void flow_start(uint64_t id, const char* name);
void flow_step(uint64_t id, const char* name);
void flow_end(uint64_t id, const char* name);
void set_thread_name(const std::string& name);

// The trace as Chrome Trace Event JSON, and written to a file (throws loom::Error).
std::string trace_json();
void write_trace(const std::string& path);
size_t event_count();  // committed events since start_tracing()

}  // namespace loom::profile
