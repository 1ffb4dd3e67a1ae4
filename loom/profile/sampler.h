// A statistical CPU profiler of every thread of the process, in the spirit of DCPI
// ("Continuous Profiling: Where Have All the Cycles Gone?", SOSP'97): sample often, cheaply,
// all the time, and attribute samples afterwards.
//
// Mechanism: per thread, the kernel's software task-clock perf event (perf_event_open,
// counting only while the thread runs; high resolution; allowed for one's own threads at
// perf_event_paranoid <= 2 and needing no hardware counters, which this VM lacks), set to
// deliver SIGPROF to that thread on every overflow. Where perf events are not allowed, a
// POSIX timer on the thread's CPU-time clock (timer_create + SIGEV_THREAD_ID) instead; those
// fire on scheduler ticks, so their rate is capped at CONFIG_HZ (250/s here);
// LOOM_SAMPLER=timer forces them. Either way each
// thread is sampled in proportion to the CPU it uses, `hz` samples per CPU-second (default
// 1 kHz, up to 10 kHz). A helper thread arms threads that appear later and drains the
// buffers. The SIGPROF handler is async-signal-safe: it walks the frame-pointer chain (Loom
// builds with -fno-omit-frame-pointer) only within the interrupted thread's own stack mapping,
// so a broken chain (code built without frame pointers) ends the walk instead of faulting,
// and appends raw addresses to a preallocated buffer with one atomic add. Symbolization (the
// executable's ELF symbol table, dladdr for shared libraries, demangling) happens after stop.
//
// One sampler per process at a time; start/stop from one controlling thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom::profile {

struct SampleProfile {
  // (thread name, frames root..leaf) -> samples
  std::map<std::vector<std::string>, int64_t> stacks;
  int64_t samples = 0, dropped = 0;
  int hz = 0;
  double seconds = 0;     // wall time sampled
  std::string mechanism;  // which clock drove the samples

  std::string folded() const;  // "thread;root;...;leaf count" lines (flamegraph.pl, speedscope)
  // Flat (self: the leaf frame) and cumulative (anywhere on the stack) top-n functions.
  std::string top_table(int n = 25) const;
  std::string flamegraph_svg(const std::string& title = "Loom CPU profile") const;
  // Samples whose stack contains a frame with `function` in its name (cumulative).
  int64_t samples_in(const std::string& function) const;
};

// Parses folded stacks back (used by `loom prof --flamegraph` and tests).
SampleProfile parse_folded(const std::string& text, const std::string& what);

void start_sampling(int hz = 1000);  // throws loom::Error if running or timers are unavailable
bool sampling();
SampleProfile stop_sampling();

// Writes PATH (folded stacks) and PATH with .svg (flame graph); returns the svg path.
std::string write_profile(const SampleProfile& p, const std::string& path);

}  // namespace loom::profile
