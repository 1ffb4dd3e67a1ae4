// `loom prof`: reads what loom/profile wrote. A trace (loom train --trace) becomes the
// nvprof-style summary, a validation report or Magpie request paths and clusters; folded
// stacks (loom train --sample-profile) become a top table and a flame graph.
#include <fstream>
#include <memory>
#include <sstream>

#include "apps/loom/commands.h"
#include "loom/base/error.h"
#include "loom/base/file.h"
#include "loom/profile/analyze.h"
#include "loom/profile/sampler.h"

namespace loom::cli {
namespace {

struct ProfOptions {
  std::string file, by = "name", svg, timeline;
  double from_ms = 0, to_ms = 0;
  bool json = false, requests = false, check = false, folded = false;
  int top = 25;
};

int run_prof(const ProfOptions& o) {
  if (o.folded) {
    profile::SampleProfile p = profile::parse_folded(read_file(o.file), o.file);
    std::printf("%s", p.top_table(o.top).c_str());
    if (!o.svg.empty()) {
      std::ofstream out(o.svg);
      LOOM_CHECK(out.good(), "cannot write {}", o.svg);
      out << p.flamegraph_svg(o.file);
      std::printf("\nwrote flame graph %s\n", o.svg.c_str());
    }
    return 0;
  }
  profile::Trace t = profile::load_trace(o.file);
  if (!o.timeline.empty()) {
    std::ofstream out(o.timeline);
    LOOM_CHECK(out.good(), "cannot write {}", o.timeline);
    double t0 = 1e300;
    for (const auto& e : t.events)
      if (e.ph == 'X') t0 = std::min(t0, e.ts);
    out << profile::timeline_svg(t, t0 + o.from_ms * 1e3, o.to_ms > o.from_ms ? t0 + o.to_ms * 1e3 : 0);
    std::printf("wrote timeline %s\n", o.timeline.c_str());
    return 0;
  }
  if (o.check) {
    const auto problems = profile::check_trace(t);
    for (const auto& p : problems) std::printf("%s\n", p.c_str());
    std::printf("%zu events, %zu problems\n", t.events.size(), problems.size());
    return problems.empty() ? 0 : 1;
  }
  if (o.requests) {
    const auto paths = profile::extract_requests(t);
    LOOM_CHECK(!paths.empty(), "{}: no request spans (category 'stage' with args.request)", o.file);
    std::printf("%s", profile::format_requests(paths, profile::cluster_requests(paths)).c_str());
    return 0;
  }
  LOOM_CHECK(o.by == "name" || o.by == "shape", "--by: '{}' is not name or shape", o.by);
  const auto stats = profile::summarize(t, o.by == "shape");
  if (o.json) {
    std::printf("%s\n", profile::summary_json(stats).c_str());
  } else {
    std::printf("%s", profile::format_summary(stats).c_str());
  }
  return 0;
}

}  // namespace

void add_prof(CLI::App& app, Runner& run) {
  auto o = std::make_shared<ProfOptions>();
  auto* cmd = app.add_subcommand("prof", "Summarize a trace (nvprof table), its requests (Magpie), or folded stacks");
  cmd->add_option("file", o->file, "trace JSON (loom train --trace) or folded stacks with --folded")->required();
  cmd->add_option("--by", o->by, "group spans by name or by shape")->capture_default_str();
  cmd->add_flag("--json", o->json, "the summary as JSON");
  cmd->add_flag("--requests", o->requests, "request paths and behaviour clusters (Magpie)");
  cmd->add_flag("--check", o->check, "validate the trace (nesting, timestamps, flows); exit 1 on problems");
  cmd->add_flag("--folded", o->folded, "FILE is folded stacks (loom train --sample-profile): top table");
  cmd->add_option("--svg", o->svg, "with --folded: write a flame graph");
  cmd->add_option("--timeline", o->timeline, "draw the trace (or a window of it) as an SVG timeline");
  cmd->add_option("--from-ms", o->from_ms, "timeline window start, ms after the first span");
  cmd->add_option("--to-ms", o->to_ms, "timeline window end, ms after the first span");
  cmd->add_option("--top", o->top, "rows of the top table")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->callback([o, &run] { run = [o] { return run_prof(*o); }; });
}

}  // namespace loom::cli
