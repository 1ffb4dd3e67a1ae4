// Reading traces back: the nvprof-style summary (`loom prof trace.json`), trace validation,
// and Magpie request paths and behaviour clusters (`loom prof --requests trace.json`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom::profile {

struct TraceEvent {
  char ph = 'X';
  std::string name, cat;
  double ts = 0, dur = 0;  // µs
  int tid = 0;
  uint64_t id = 0;       // flow id
  uint64_t request = 0;  // args.request
  double flops = 0, bytes = 0;
  std::string shapes;  // args.shapes (op spans)
};

struct Trace {
  std::vector<TraceEvent> events;  // in file order
  std::map<int, std::string> thread_names;
};

// Parses Chrome Trace Event JSON (an object with traceEvents, or a bare array); throws
// loom::Error naming the file and the event index on malformed input.
Trace parse_trace(const std::string& json_text, const std::string& what);
Trace load_trace(const std::string& path);

// Problems found (empty: none): X spans not strictly nested per thread, timestamps going
// backwards within a thread, B/E unbalanced, flow ids without both a start and an end.
std::vector<std::string> check_trace(const Trace& t);

// ---- nvprof summary --------------------------------------------------------------------
struct SpanStats {
  std::string category, name;  // name includes the shapes with by_shape
  int64_t calls = 0;
  double total_us = 0, min_us = 0, max_us = 0, flops = 0, bytes = 0;
};
// X spans grouped by (category, name[, shapes]); categories by total time, names by time.
std::vector<SpanStats> summarize(const Trace& t, bool by_shape);
// The table: Time(%) (of its category), Time, Calls, Avg, Min, Max, GFLOP/s, GB/s, Name.
std::string format_summary(const std::vector<SpanStats>& s);
std::string summary_json(const std::vector<SpanStats>& s);

// A picture of a trace window [t0, t1) (µs; t1 <= t0 means the whole trace): one lane per
// thread, spans stacked by nesting depth, flows as arrows. For docs and quick looks; the
// interactive view is Perfetto.
std::string timeline_svg(const Trace& t, double t0 = 0, double t1 = 0, int width = 1200);

// ---- Magpie request paths --------------------------------------------------------------
struct PathStage {
  std::string name;
  int tid = 0;
  double start = 0, end = 0;  // µs
  double queue = 0;           // wait since the previous stage ended (0 for the first)
};
struct RequestPath {
  uint64_t id = 0;
  std::vector<PathStage> stages;
  double latency = 0, service = 0, queue = 0;  // µs: end-to-end, sum of stages, sum of waits
  std::string signature() const;                // "parse>compute>respond"
};
// One path per request id: its spans of the given categories in time order.
std::vector<RequestPath> extract_requests(const Trace& t, const std::vector<std::string>& categories = {"stage"});

struct RequestCluster {
  std::string signature;
  std::vector<uint64_t> members;
  uint64_t representative = 0;  // the member closest to the cluster's mean time vector
  double mean_latency = 0, mean_queue = 0;
  std::vector<double> mean_stage_time;  // per stage: mean service time
};
// Magpie's clustering by behaviour: requests with the same stage sequence share a structure
// (edit distance 0); within a structure, k-means (k <= 4, initialised at latency quantiles, so
// deterministic) on the vector of stage service times, k the smallest whose within-cluster
// sum of squares is <= 10% of k=1's (a unimodal spread never passes: splitting a normal
// sample keeps 36%), whose clusters all hold >= max(3, 10%) of the requests (a few preempted
// requests are noise, not a behaviour), and whose clusters all differ pairwise by >= 2x in some
// stage's mean service time.
std::vector<RequestCluster> cluster_requests(const std::vector<RequestPath>& paths);
std::string format_requests(const std::vector<RequestPath>& paths, const std::vector<RequestCluster>& clusters);

// Levenshtein distance between two stage sequences.
int edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b);

}  // namespace loom::profile
