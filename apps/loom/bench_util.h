// Timing helpers for `loom bench`: repeat, report min and median.
#pragma once

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <chrono>
#include <thread>
#include <functional>
#include <vector>

#include "loom/base/error.h"
#include "loom/base/time.h"

namespace loom::cli {

// Seconds per call of fn: runs it in batches of at least `min_batch_s` and returns one
// per-call time for each batch.
inline double time_batch(const std::function<void()>& fn, double min_batch_s = 0.02) {
  int iters = 0;
  double start = now_seconds(), t;
  do {
    fn();
    ++iters;
    t = now_seconds() - start;
  } while (t < min_batch_s);
  return t / iters;
}

struct Timing {
  std::vector<double> samples;  // seconds per call
  double min() const { return *std::min_element(samples.begin(), samples.end()); }
  double median() const {
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
};

// Measures every contender `repeats` times, round-robin: repeat r of every contender runs
// before repeat r + 1 of any, so a slow phase of this shared VM (they last seconds to
// minutes) lands on all contenders alike instead of on whichever ran during it. Peers built
// on OpenMP or OpenBLAS's own pool leave their worker threads spinning after a call
// (OpenBLAS: 2^28 cycles, ~80 ms here); on a 2-core machine those spinners would steal the
// next contender's cores, so every contender's turn starts after a pause that lets them
// go to sleep, and then an untimed batch: its own threads wake and settle on their CPUs
// (after a sleep they may start out sharing one) and its buffers are warm.
inline std::vector<Timing> time_each(const std::vector<std::function<void()>>& fns, int repeats) {
  std::vector<Timing> out(fns.size());
  for (int r = 0; r < repeats; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      if (!fns[i]) continue;
      if (fns.size() > 1 || r == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(120));
        time_batch(fns[i]);  // warm-up: threads, packing buffers, first-touch pages, JIT
      }
      out[i].samples.push_back(time_batch(fns[i]));
    }
  return out;
}

// The median over repeats of peer time / Loom time, each pair from the same round of
// time_each (a fraction of a second apart): a slow phase of this shared VM lands on both
// members of a pair, so this moves less from run to run than the ratio of the minima,
// which a contender whose times scatter more wins by its luckiest batch. > 1: Loom faster.
inline double paired_ratio(const Timing& loom, const Timing& peer) {
  const size_t n = std::min(loom.samples.size(), peer.samples.size());
  if (n == 0) return 0;
  std::vector<double> r(n);
  for (size_t i = 0; i < n; ++i) r[i] = peer.samples[i] / loom.samples[i];
  std::sort(r.begin(), r.end());
  return r[n / 2];
}

// Writes benchmark records (a JSON array) to `path` when it is not empty.
inline void write_json_records(const std::string& path, const nlohmann::json& records, const char* bench) {
  if (path.empty()) return;
  std::ofstream out(path);
  LOOM_CHECK(out.good(), "bench {}: cannot write {}", bench, path);
  out << records.dump(2) << "\n";
}

// Runs a shell command (a peer's script) whose last output line is a JSON document; returns
// it, or null when the command fails or prints none (its output is left in *output).
inline nlohmann::json run_json_command(const std::string& cmd, std::string* output = nullptr) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((cmd + " 2>&1").c_str(), "r"), pclose);
  if (!pipe) return nullptr;
  std::string out, last;
  char buf[1 << 16];
  while (fgets(buf, sizeof(buf), pipe.get())) {
    out += buf;
    std::string line(buf);
    if (line.find_first_not_of(" \t\r\n") != std::string::npos) last = line;
  }
  if (output) *output = out;
  return nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
}

}  // namespace loom::cli
