// `loom bench profile`: what profiling costs. Training samples/s of the cnn and mlp with
// tracing off, tracing on, and the sampler at 1 kHz, the three interleaved repetition by
// repetition (this machine drifts by several % over seconds); plus the cost of one span hook
// disabled and enabled, and from it the estimated cost of the disabled hooks per step.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "loom/base/thread_pool.h"
#include "loom/profile/sampler.h"
#include "loom/profile/trace.h"

namespace loom::cli {
namespace {

struct ProfileBenchOptions {
  BenchCommon common;
  int steps = 20, hz = 1000;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Nanoseconds per span hook, with tracing off or on.
double span_ns(bool on, int n) {
  if (on) profile::start_tracing();
  const double t = now_seconds();
  for (int i = 0; i < n; ++i) {
    profile::Span s("bench_span", "bench");
  }
  const double dt = now_seconds() - t;
  if (on) profile::stop_tracing();
  return dt * 1e9 / n;
}

int run_bench_profile(const ProfileBenchOptions& o) {
  const double off_ns = std::min({span_ns(false, 2000000), span_ns(false, 2000000), span_ns(false, 2000000)});
  const double on_ns = std::min({span_ns(true, 200000), span_ns(true, 200000), span_ns(true, 200000)});
  profile::start_tracing();  // drop the benchmark's events
  profile::stop_tracing();
  std::printf("span hook: %.2f ns disabled, %.0f ns enabled (recording one event)\n\n", off_ns, on_ns);
  std::printf("%-5s %5s %3s %12s %12s %12s %9s %9s %10s %10s\n", "model", "batch", "thr", "off/s", "trace/s",
              "sample/s", "trace%", "sample%", "spans/step", "off_est%");
  nlohmann::json records = nlohmann::json::array();
  for (int t : parse_int_list(o.common.threads, "--threads")) {
    set_num_threads(t);
    for (const std::string model : {"mlp", "cnn"}) {
      const int64_t batch = 64;
      // Repetition r runs configuration r % 3: off, tracing, sampling.
      const int reps = 3 * o.common.repeats;
      size_t spans_per_step = 0;
      std::vector<double> rates = train_samples_per_s(model, batch, o.steps, reps, [&](int r) {
        if (profile::tracing()) {
          profile::stop_tracing();
          spans_per_step = profile::event_count() / o.steps;
        }
        if (profile::sampling()) profile::stop_sampling();
        if (r < 0) return;
        if (r % 3 == 1) profile::start_tracing();
        if (r % 3 == 2) profile::start_sampling(o.hz);
      });
      std::vector<double> cfg[3];
      for (int r = 0; r < reps; ++r) cfg[r % 3].push_back(rates[r]);
      const double off = median(cfg[0]), tr = median(cfg[1]), sa = median(cfg[2]);
      const double trace_pct = 100.0 * (off - tr) / off, sample_pct = 100.0 * (off - sa) / off;
      const double step_s = batch / off;
      const double off_est = 100.0 * spans_per_step * off_ns * 1e-9 / step_s;
      std::printf("%-5s %5lld %3d %12.0f %12.0f %12.0f %8.2f%% %8.2f%% %10zu %9.3f%%\n", model.c_str(),
                  static_cast<long long>(batch), t, off, tr, sa, trace_pct, sample_pct, spans_per_step, off_est);
      std::fflush(stdout);
      records.push_back({{"case", model + " train batch 64"}, {"threads", t}, {"off_samples_per_s", off},
                         {"trace_samples_per_s", tr}, {"sample_samples_per_s", sa}, {"trace_overhead_pct", trace_pct},
                         {"sample_overhead_pct", sample_pct}, {"spans_per_step", spans_per_step},
                         {"disabled_hook_ns", off_ns}, {"enabled_hook_ns", on_ns},
                         {"disabled_overhead_est_pct", off_est}, {"sample_hz", o.hz}});
    }
  }
  profile::start_tracing();  // release the recorded events' memory on the next session
  profile::stop_tracing();
  write_json_records(o.common.json, records, "profile");
  return 0;
}

}  // namespace

void add_bench_profile(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<ProfileBenchOptions>();
  o->common.repeats = 7;
  auto* cmd = bench.add_subcommand("profile", "Training throughput with tracing off / on and the sampler at 1 kHz");
  add_common_bench_options(*cmd, o->common);
  cmd->add_option("--steps", o->steps, "training steps per repetition")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--hz", o->hz, "sampler rate")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->callback([o, &run] { run = [o] { return run_bench_profile(*o); }; });
}

}  // namespace loom::cli
