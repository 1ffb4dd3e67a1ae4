#include "loom/profile/analyze.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "loom/base/error.h"
#include "loom/base/file.h"

namespace loom::profile {
namespace {

using json = nlohmann::json;

double num(const json& e, const char* key, size_t i, const std::string& what) {
  auto it = e.find(key);
  if (it == e.end()) return 0;
  LOOM_CHECK(it->is_number(), "{}: event {}: '{}' is not a number", what, i, key);
  return it->get<double>();
}

std::string fmt_time(double us) {
  if (us >= 1e6) return fmt::format("{:.4f}s", us / 1e6);
  if (us >= 1e3) return fmt::format("{:.4f}ms", us / 1e3);
  return fmt::format("{:.3f}us", us);
}

}  // namespace

Trace parse_trace(const std::string& text, const std::string& what) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    LOOM_THROW("{}: not valid JSON ({})", what, e.what());
  }
  const json* evs = &root;
  if (root.is_object()) {
    auto it = root.find("traceEvents");
    LOOM_CHECK(it != root.end() && it->is_array(), "{}: no traceEvents array", what);
    evs = &*it;
  }
  LOOM_CHECK(evs->is_array(), "{}: expected an object with traceEvents or an array of events", what);
  Trace t;
  for (size_t i = 0; i < evs->size(); ++i) {
    const json& e = (*evs)[i];
    LOOM_CHECK(e.is_object(), "{}: event {} is not an object", what, i);
    auto ph = e.find("ph");
    LOOM_CHECK(ph != e.end() && ph->is_string() && ph->get_ref<const std::string&>().size() == 1,
               "{}: event {} has no one-letter 'ph'", what, i);
    TraceEvent ev;
    ev.ph = ph->get_ref<const std::string&>()[0];
    if (e.contains("name") && e["name"].is_string()) ev.name = e["name"].get<std::string>();
    if (e.contains("cat") && e["cat"].is_string()) ev.cat = e["cat"].get<std::string>();
    ev.ts = num(e, "ts", i, what);
    ev.dur = num(e, "dur", i, what);
    ev.tid = static_cast<int>(num(e, "tid", i, what));
    if (e.contains("id")) {
      const json& id = e["id"];
      ev.id = id.is_number_unsigned() || id.is_number_integer() ? id.get<uint64_t>()
              : id.is_string()                                 ? std::hash<std::string>()(id.get<std::string>())
                                                               : 0;
    }
    if (e.contains("args") && e["args"].is_object()) {
      const json& a = e["args"];
      if (a.contains("request") && a["request"].is_number()) ev.request = a["request"].get<uint64_t>();
      if (a.contains("flops") && a["flops"].is_number()) ev.flops = a["flops"].get<double>();
      if (a.contains("bytes") && a["bytes"].is_number()) ev.bytes = a["bytes"].get<double>();
      if (a.contains("shapes") && a["shapes"].is_string()) ev.shapes = a["shapes"].get<std::string>();
      if (ev.ph == 'M' && ev.name == "thread_name" && a.contains("name") && a["name"].is_string())
        t.thread_names[ev.tid] = a["name"].get<std::string>();
    }
    t.events.push_back(std::move(ev));
  }
  return t;
}

Trace load_trace(const std::string& path) {
  return parse_trace(read_file(path), path);
}

std::vector<std::string> check_trace(const Trace& t) {
  std::vector<std::string> problems;
  std::map<int, std::vector<std::pair<double, double>>> open;  // per thread: stack of X [start, end]
  std::map<int, double> last_ts;
  std::map<int, int> be_depth;
  std::map<uint64_t, int> flow_starts, flow_ends;
  // Timestamps are written with 3 decimals (ns); allow that rounding when comparing ends.
  constexpr double kEps = 0.002;
  for (size_t i = 0; i < t.events.size(); ++i) {
    const TraceEvent& e = t.events[i];
    if (e.ph == 'M') continue;
    auto lt = last_ts.find(e.tid);
    if (lt != last_ts.end() && e.ts + kEps < lt->second)
      problems.push_back(fmt::format("event {} ({}) on thread {}: ts {} before the previous {}", i, e.name, e.tid, e.ts,
                                     lt->second));
    last_ts[e.tid] = e.ts;
    auto& stack = open[e.tid];
    while (!stack.empty() && stack.back().second <= e.ts) stack.pop_back();  // spans that ended before e
    if (e.ph == 'X') {
      if (!stack.empty() && e.ts + e.dur > stack.back().second + kEps)
        problems.push_back(fmt::format("event {} ({}) on thread {}: [{}, {}] overlaps its enclosing span ending {}", i,
                                       e.name, e.tid, e.ts, e.ts + e.dur, stack.back().second));
      stack.push_back({e.ts, e.ts + e.dur});
    } else if (e.ph == 'B') {
      ++be_depth[e.tid];
    } else if (e.ph == 'E') {
      if (--be_depth[e.tid] < 0) problems.push_back(fmt::format("event {}: E without B on thread {}", i, e.tid));
    } else if (e.ph == 's') {
      ++flow_starts[e.id];
    } else if (e.ph == 'f') {
      ++flow_ends[e.id];
    }
  }
  for (auto [tid, d] : be_depth)
    if (d > 0) problems.push_back(fmt::format("thread {}: {} B events never ended", tid, d));
  for (auto [id, n] : flow_starts)
    if (!flow_ends.count(id)) problems.push_back(fmt::format("flow {} starts but never ends", id));
  for (auto [id, n] : flow_ends)
    if (!flow_starts.count(id)) problems.push_back(fmt::format("flow {} ends but never starts", id));
  return problems;
}

std::vector<SpanStats> summarize(const Trace& t, bool by_shape) {
  std::map<std::pair<std::string, std::string>, SpanStats> acc;
  for (const TraceEvent& e : t.events) {
    if (e.ph != 'X') continue;
    std::string name = by_shape && !e.shapes.empty() ? e.name + " " + e.shapes : e.name;
    SpanStats& s = acc[{e.cat, name}];
    if (s.calls == 0) {
      s.category = e.cat;
      s.name = name;
      s.min_us = e.dur;
      s.max_us = e.dur;
    }
    ++s.calls;
    s.total_us += e.dur;
    s.min_us = std::min(s.min_us, e.dur);
    s.max_us = std::max(s.max_us, e.dur);
    s.flops += e.flops;
    s.bytes += e.bytes;
  }
  std::map<std::string, double> cat_total;
  std::vector<SpanStats> out;
  for (auto& [k, s] : acc) {
    cat_total[s.category] += s.total_us;
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [&](const SpanStats& a, const SpanStats& b) {
    if (a.category != b.category) return cat_total[a.category] > cat_total[b.category];
    return a.total_us > b.total_us;
  });
  return out;
}

std::string format_summary(const std::vector<SpanStats>& stats) {
  std::map<std::string, double> cat_total;
  for (const auto& s : stats) cat_total[s.category] += s.total_us;
  std::string out;
  std::string cat = "\x01";
  for (const auto& s : stats) {
    if (s.category != cat) {
      cat = s.category;
      out += fmt::format("\n==== {} ({} total) ====\n", cat.empty() ? "(no category)" : cat, fmt_time(cat_total[cat]));
      out += fmt::format("{:>8} {:>12} {:>8} {:>12} {:>12} {:>12} {:>9} {:>8}  {}\n", "Time(%)", "Time", "Calls", "Avg",
                         "Min", "Max", "GFLOP/s", "GB/s", "Name");
    }
    const double pct = cat_total[cat] > 0 ? 100.0 * s.total_us / cat_total[cat] : 0;
    const std::string gf = s.flops > 0 ? fmt::format("{:.2f}", s.flops / (s.total_us * 1e3)) : "-";
    const std::string gb = s.bytes > 0 ? fmt::format("{:.2f}", s.bytes / (s.total_us * 1e3)) : "-";
    out += fmt::format("{:>7.2f}% {:>12} {:>8} {:>12} {:>12} {:>12} {:>9} {:>8}  {}\n", pct, fmt_time(s.total_us),
                       s.calls, fmt_time(s.total_us / s.calls), fmt_time(s.min_us), fmt_time(s.max_us), gf, gb, s.name);
  }
  return out;
}

std::string summary_json(const std::vector<SpanStats>& stats) {
  json arr = json::array();
  for (const auto& s : stats)
    arr.push_back({{"category", s.category}, {"name", s.name}, {"calls", s.calls}, {"total_us", s.total_us},
                   {"avg_us", s.total_us / s.calls}, {"min_us", s.min_us}, {"max_us", s.max_us},
                   {"gflops", s.flops > 0 ? s.flops / (s.total_us * 1e3) : 0.0},
                   {"gbps", s.bytes > 0 ? s.bytes / (s.total_us * 1e3) : 0.0}});
  return arr.dump(2);
}

std::string timeline_svg(const Trace& t, double t0, double t1, int width) {
  double lo = 1e300, hi = -1e300;
  for (const TraceEvent& e : t.events)
    if (e.ph == 'X') {
      lo = std::min(lo, e.ts);
      hi = std::max(hi, e.ts + e.dur);
    }
  if (t1 <= t0) {
    t0 = lo;
    t1 = hi;
  }
  if (!(t1 > t0)) return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n";
  // Lanes: threads in order of first event; depth from nesting.
  std::vector<int> tids;
  std::map<int, std::vector<std::pair<const TraceEvent*, int>>> spans;  // tid -> (span, depth)
  std::map<int, std::vector<double>> open_ends;
  for (const TraceEvent& e : t.events) {
    if (e.ph != 'X') continue;
    if (!spans.count(e.tid)) tids.push_back(e.tid);
    auto& ends = open_ends[e.tid];
    while (!ends.empty() && ends.back() <= e.ts) ends.pop_back();
    spans[e.tid].push_back({&e, static_cast<int>(ends.size())});
    ends.push_back(e.ts + e.dur);
  }
  const double left = 150, row = 14, scale = (width - left - 10) / (t1 - t0);
  std::map<int, double> lane_y;
  double y = 40;
  std::string body;
  for (int tid : tids) {
    int depth = 0;
    for (auto& [e, d] : spans[tid]) depth = std::max(depth, d + 1);
    lane_y[tid] = y;
    auto name = t.thread_names.find(tid);
    body += fmt::format("<text x=\"5\" y=\"{:.1f}\" font-size=\"12\">{}</text>\n", y + 11,
                        name != t.thread_names.end() ? name->second : fmt::format("thread {}", tid));
    for (auto& [e, d] : spans[tid]) {
      if (e->ts + e->dur < t0 || e->ts > t1) continue;
      const double x = left + (std::max(e->ts, t0) - t0) * scale;
      const double w = std::max(0.5, (std::min(e->ts + e->dur, t1) - std::max(e->ts, t0)) * scale);
      const size_t h = std::hash<std::string>()(e->cat + e->name);
      body += fmt::format(
          "<g><title>{} ({}) {:.1f} us</title><rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{}\" "
          "fill=\"hsl({},55%,{}%)\"/>",
          e->name, e->cat, e->dur, x, y + d * row, w, row - 1, h % 360, e->cat == "op" ? 70 : 55);
      if (w > 7.0 * static_cast<double>(e->name.size()))
        body += fmt::format("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"10\">{}</text>", x + 2, y + d * row + 10,
                            e->name);
      body += "</g>\n";
    }
    y += depth * row + 12;
  }
  // Flow arrows: start (s) to end (f), drawn between lanes.
  std::map<uint64_t, const TraceEvent*> starts;
  for (const TraceEvent& e : t.events)
    if (e.ph == 's') starts[e.id] = &e;
  for (const TraceEvent& e : t.events) {
    if (e.ph != 'f' || !starts.count(e.id)) continue;
    const TraceEvent& s = *starts[e.id];
    if (s.ts < t0 || e.ts > t1 || !lane_y.count(s.tid) || !lane_y.count(e.tid)) continue;
    body += fmt::format("<line x1=\"{:.2f}\" y1=\"{:.1f}\" x2=\"{:.2f}\" y2=\"{:.1f}\" stroke=\"#333\" "
                        "stroke-width=\"1\" marker-end=\"url(#arrow)\"/>\n",
                        left + (s.ts - t0) * scale, lane_y[s.tid] + 6, left + (e.ts - t0) * scale, lane_y[e.tid] + 6);
  }
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{:.0f}\" font-family=\"sans-serif\">\n"
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" "
      "markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"5\" y=\"20\" font-size=\"14\">trace window {:.3f} ms ({:.1f} .. {:.1f} us)</text>\n",
      width, y + 10, (t1 - t0) / 1000, t0, t1);
  return out + body + "</svg>\n";
}

// ---- Magpie --------------------------------------------------------------------------------

std::string RequestPath::signature() const {
  std::string s;
  for (size_t i = 0; i < stages.size(); ++i) s += (i ? ">" : "") + stages[i].name;
  return s;
}

std::vector<RequestPath> extract_requests(const Trace& t, const std::vector<std::string>& categories) {
  const std::set<std::string> cats(categories.begin(), categories.end());
  std::map<uint64_t, RequestPath> by_id;
  for (const TraceEvent& e : t.events) {
    if (e.ph != 'X' || e.request == 0 || !cats.count(e.cat)) continue;
    RequestPath& p = by_id[e.request];
    p.id = e.request;
    p.stages.push_back({e.name, e.tid, e.ts, e.ts + e.dur, 0});
  }
  std::vector<RequestPath> out;
  for (auto& [id, p] : by_id) {
    std::stable_sort(p.stages.begin(), p.stages.end(),
                     [](const PathStage& a, const PathStage& b) { return a.start < b.start; });
    double prev_end = p.stages.front().start;
    for (PathStage& s : p.stages) {
      s.queue = std::max(0.0, s.start - prev_end);
      prev_end = std::max(prev_end, s.end);
      p.service += s.end - s.start;
      p.queue += s.queue;
    }
    p.latency = prev_end - p.stages.front().start;
    out.push_back(std::move(p));
  }
  return out;
}

int edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

// A request's own resource use: the service time of each stage (µs). Queueing is left out:
// it reflects the other requests in the system, not this one's behaviour.
std::vector<double> time_vector(const RequestPath& p) {
  std::vector<double> v;
  for (const PathStage& s : p.stages) v.push_back(s.end - s.start);
  return v;
}

double dist2(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]);
  return d;
}

// k-means with centres initialised at latency quantiles (deterministic); returns assignments.
std::vector<int> kmeans(const std::vector<std::vector<double>>& x, const std::vector<size_t>& by_latency, int k,
                        double* sse) {
  std::vector<std::vector<double>> c(k);
  for (int j = 0; j < k; ++j) c[j] = x[by_latency[(by_latency.size() - 1) * (2 * j + 1) / (2 * k)]];
  std::vector<int> a(x.size(), 0);
  for (int it = 0; it < 50; ++it) {
    bool changed = false;
    for (size_t i = 0; i < x.size(); ++i) {
      int best = 0;
      for (int j = 1; j < k; ++j)
        if (dist2(x[i], c[j]) < dist2(x[i], c[best])) best = j;
      changed |= best != a[i];
      a[i] = best;
    }
    for (int j = 0; j < k; ++j) {
      std::vector<double> m(x[0].size(), 0);
      int n = 0;
      for (size_t i = 0; i < x.size(); ++i)
        if (a[i] == j) {
          for (size_t d = 0; d < m.size(); ++d) m[d] += x[i][d];
          ++n;
        }
      if (n) {
        for (double& v : m) v /= n;
        c[j] = m;
      }
    }
    if (!changed && it > 0) break;
  }
  *sse = 0;
  for (size_t i = 0; i < x.size(); ++i) *sse += dist2(x[i], c[a[i]]);
  return a;
}

}  // namespace

std::vector<RequestCluster> cluster_requests(const std::vector<RequestPath>& paths) {
  std::map<std::string, std::vector<const RequestPath*>> structure;
  for (const RequestPath& p : paths) structure[p.signature()].push_back(&p);
  std::vector<RequestCluster> out;
  for (auto& [sig, members] : structure) {
    std::vector<std::vector<double>> x;
    for (const RequestPath* p : members) x.push_back(time_vector(*p));
    std::vector<size_t> order(members.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return members[a]->latency < members[b]->latency; });
    double sse1 = 0;
    std::vector<int> assign = kmeans(x, order, 1, &sse1);
    for (int k = 2; k <= std::min<int>(4, static_cast<int>(members.size())); ++k) {
      double sse = 0;
      std::vector<int> a = kmeans(x, order, k, &sse);
      // A split must explain most of the spread, and every part must be a behaviour shared
      // by several requests: one preempted request is noise, not a cluster.
      std::vector<size_t> sizes(k, 0);
      for (int j : a) ++sizes[j];
      const size_t min_size = std::max<size_t>(3, members.size() / 10);
      const bool all_big = std::all_of(sizes.begin(), sizes.end(), [&](size_t n) { return n >= min_size; });
      // Distinct behaviours differ by at least 2x in some stage's mean service time; smaller
      // differences are the noise of a loaded machine (scheduling delays), not behaviour.
      std::vector<std::vector<double>> mean(k, std::vector<double>(x[0].size(), 0.0));
      for (size_t i = 0; i < x.size(); ++i)
        for (size_t d = 0; d < x[i].size(); ++d) mean[a[i]][d] += x[i][d] / static_cast<double>(sizes[a[i]]);
      bool separated = true;
      for (int c1 = 0; c1 < k; ++c1)
        for (int c2 = c1 + 1; c2 < k; ++c2) {
          bool differ = false;
          for (size_t d = 0; d < mean[c1].size(); ++d) {
            const double lo = std::min(mean[c1][d], mean[c2][d]), hi = std::max(mean[c1][d], mean[c2][d]);
            differ |= hi >= 2 * lo && hi - lo > 1.0;  // and more than 1 µs apart
          }
          separated &= differ;
        }
      if (sse1 == 0) break;
      if (sse <= 0.10 * sse1 && all_big && separated) {
        assign = a;
        break;
      }
    }
    const int k = *std::max_element(assign.begin(), assign.end()) + 1;
    for (int j = 0; j < k; ++j) {
      RequestCluster c;
      c.signature = sig;
      std::vector<double> mean(x[0].size(), 0);
      std::vector<size_t> idx;
      for (size_t i = 0; i < members.size(); ++i)
        if (assign[i] == j) idx.push_back(i);
      if (idx.empty()) continue;
      c.mean_stage_time.assign(members[0]->stages.size(), 0);
      for (size_t i : idx) {
        c.members.push_back(members[i]->id);
        c.mean_latency += members[i]->latency / idx.size();
        c.mean_queue += members[i]->queue / idx.size();
        for (size_t s = 0; s < c.mean_stage_time.size(); ++s)
          c.mean_stage_time[s] += (members[i]->stages[s].end - members[i]->stages[s].start) / idx.size();
        for (size_t d = 0; d < mean.size(); ++d) mean[d] += x[i][d] / idx.size();
      }
      size_t rep = idx[0];
      for (size_t i : idx)
        if (dist2(x[i], mean) < dist2(x[rep], mean)) rep = i;
      c.representative = members[rep]->id;
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const RequestCluster& a, const RequestCluster& b) { return a.members.size() > b.members.size(); });
  return out;
}

std::string format_requests(const std::vector<RequestPath>& paths, const std::vector<RequestCluster>& clusters) {
  std::map<uint64_t, const RequestPath*> by_id;
  for (const RequestPath& p : paths) by_id[p.id] = &p;
  auto split = [](const std::string& sig) {
    std::vector<std::string> v;
    std::stringstream ss(sig);
    std::string s;
    while (std::getline(ss, s, '>')) v.push_back(s);
    return v;
  };
  std::string out = fmt::format("{} requests, {} clusters\n", paths.size(), clusters.size());
  for (size_t ci = 0; ci < clusters.size(); ++ci) {
    const RequestCluster& c = clusters[ci];
    out += fmt::format("\ncluster {}: {} requests, path {}\n  mean latency {}, mean queueing {}\n", ci + 1,
                       c.members.size(), c.signature, fmt_time(c.mean_latency), fmt_time(c.mean_queue));
    // The nearest other structure, as Magpie compares event strings.
    int nearest = -1;
    for (size_t cj = 0; cj < clusters.size(); ++cj)
      if (clusters[cj].signature != c.signature) {
        const int d = edit_distance(split(c.signature), split(clusters[cj].signature));
        if (nearest < 0 || d < nearest) nearest = d;
      }
    if (nearest >= 0) out += fmt::format("  nearest other path structure: edit distance {}\n", nearest);
    const RequestPath& r = *by_id.at(c.representative);
    out += fmt::format("  representative request {} (latency {}):\n", r.id, fmt_time(r.latency));
    for (const PathStage& s : r.stages)
      out += fmt::format("    {:<20} thread {:<8} queued {:>12}  service {:>12}\n", s.name, s.tid, fmt_time(s.queue),
                         fmt_time(s.end - s.start));
  }
  return out;
}

}  // namespace loom::profile
