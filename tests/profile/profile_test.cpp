// loom/profile: the tracer's Chrome trace, the nvprof summary, Magpie request paths against
// the ground truth of a threaded test pipeline, and the sampling profiler on a known hot
// function.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "loom/base/error.h"
#include "loom/base/request_context.h"
#include "loom/base/thread_pool.h"
#include "loom/ops/ops.h"
#include "loom/profile/analyze.h"
#include "loom/profile/sampler.h"
#include "loom/profile/trace.h"

namespace loom::profile {
namespace {

int my_tid() { return static_cast<int>(::syscall(SYS_gettid)); }

TEST(Trace, OffRecordsNothing) {
  start_tracing();
  stop_tracing();
  {
    LOOM_TRACE_SCOPE("never", "test");
    instant("never", "test");
    counter("never", 1);
  }
  EXPECT_EQ(event_count(), 0u);
}

TEST(Trace, SpansNestFlowsConnectAndJsonIsValid) {
  start_tracing();
  set_thread_name("main test thread");
  uint64_t flow = new_flow_id();
  {
    LOOM_TRACE_SCOPE("outer", "test");
    {
      LOOM_TRACE_SCOPE("inner", "test");
      flow_start(flow, "handoff");
      counter("queue_depth", 3);
    }
    instant("mark", "test", R"("note":"a \"quoted\" value")");
    begin("manual", "test");
    end();
  }
  std::thread other([&] {
    set_thread_name("other");
    LOOM_TRACE_SCOPE("consumer", "test");
    flow_end(flow, "handoff");
  });
  other.join();
  // Ops record name, shapes, flops and bytes.
  Tensor a = Tensor::randn({8, 16}), b = Tensor::randn({16, 4});
  matmul(a, b);
  stop_tracing();
  const std::string text = trace_json();
  EXPECT_TRUE(nlohmann::json::accept(text)) << text.substr(0, 500);
  Trace t = parse_trace(text, "trace");
  EXPECT_TRUE(check_trace(t).empty()) << check_trace(t).front();
  EXPECT_EQ(t.thread_names[my_tid()], "main test thread");
  bool saw_op = false, saw_outer = false;
  for (const TraceEvent& e : t.events) {
    if (e.ph == 'X' && e.name == "matmul") {
      saw_op = true;
      EXPECT_EQ(e.cat, "op");
      EXPECT_EQ(e.flops, 2.0 * 8 * 16 * 4);
      EXPECT_EQ(e.bytes, 4.0 * (8 * 16 + 16 * 4 + 8 * 4));
      EXPECT_EQ(e.shapes, "[8, 16] [16, 4]");
    }
    if (e.ph == 'X' && e.name == "outer") saw_outer = true;
  }
  EXPECT_TRUE(saw_op);
  EXPECT_TRUE(saw_outer);
  // The summary counts and groups.
  auto stats = summarize(t, false);
  int64_t test_calls = 0;
  for (const auto& s : stats)
    if (s.category == "test") test_calls += s.calls;
  EXPECT_EQ(test_calls, 3);  // outer, inner, consumer
  EXPECT_NE(format_summary(stats).find("matmul"), std::string::npos);
}

TEST(Trace, CheckFindsBrokenNestingAndDanglingFlows) {
  Trace t = parse_trace(R"({"traceEvents":[
    {"ph":"X","name":"a","ts":0,"dur":10,"tid":1,"pid":1},
    {"ph":"X","name":"b","ts":5,"dur":10,"tid":1,"pid":1},
    {"ph":"s","name":"f","id":7,"ts":6,"tid":1,"pid":1},
    {"ph":"X","name":"c","ts":3,"dur":1,"tid":2,"pid":1},
    {"ph":"X","name":"d","ts":2,"dur":1,"tid":2,"pid":1}]})",
                        "t");
  const auto problems = check_trace(t);
  ASSERT_EQ(problems.size(), 3u);  // b overlaps a; d goes back in time; flow 7 never ends
  EXPECT_THROW(parse_trace("{\"traceEvents\": [{\"ts\": 1}]}", "x"), Error);
  EXPECT_THROW(parse_trace("[1, 2", "x"), Error);
}

// A three-stage pipeline (parse -> compute | cache_hit -> respond), one thread per stage,
// queues between them. Ground truth: each request's stages and the thread of each.
struct Item {
  uint64_t request, flow;
  int kind;  // 0: cache hit, 1: slow compute, 2: fast compute, -1: stop
};

class Queue {
 public:
  void push(Item it) {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(it);
    cv_.notify_one();
  }
  bool pop(Item* it) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !q_.empty(); });
    *it = q_.front();
    q_.pop_front();
    return it->kind >= 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> q_;
};

// One stage: take an item, run `body` as a span of the item's request, hand it on.
void stage_thread(Queue& in, Queue* out, const char* name_of_kind[3], int* tid, int delay_us[3]) {
  *tid = my_tid();
  // The first event of a thread allocates its trace buffer (page faults: ~1 ms here); do it
  // before the requests, so that cold start does not make request 1 a behaviour of its own.
  { Span warm("warm_up", "init"); }
  Item it;
  while (in.pop(&it)) {
    RequestScope scope(it.request);
    Span span(name_of_kind[it.kind], "stage");
    if (it.flow) flow_end(it.flow, "hop");
    if (delay_us[it.kind] > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us[it.kind]));
    if (out) {
      it.flow = it.request ? new_flow_id() : 0;
      if (it.flow) flow_start(it.flow, "hop");
      out->push(it);
    }
  }
  if (out) out->push(Item{0, 0, -1});
}

TEST(Magpie, RequestPathsMatchTheGroundTruthAndClusterByBehaviour) {
  start_tracing();
  Queue q1, q2, q3;
  int tids[3] = {};
  const char* parse_names[3] = {"parse", "parse", "parse"};
  const char* mid_names[3] = {"cache_hit", "compute", "compute"};
  const char* respond_names[3] = {"respond", "respond", "respond"};
  // Behaviours: cache hit, slow compute (30 ms), fast compute (no wait): far apart, so that the
  // scheduling noise of a loaded machine (ctest -j, sanitizers) cannot blur them. Only the slow
  // compute sleeps: a sleeping stage's span also holds its wake-up delay, which on a loaded
  // machine is up to a scheduler time slice (milliseconds) -- with 50/20 us sleeps in parse and
  // respond, every request carried that noise and once in CI it hid the 30 ms behaviour.
  int parse_delay[3] = {0, 0, 0}, mid_delay[3] = {0, 30000, 0}, respond_delay[3] = {0, 0, 0};
  std::thread t1(stage_thread, std::ref(q1), &q2, parse_names, &tids[0], parse_delay);
  std::thread t2(stage_thread, std::ref(q2), &q3, mid_names, &tids[1], mid_delay);
  std::thread t3(stage_thread, std::ref(q3), nullptr, respond_names, &tids[2], respond_delay);
  std::map<uint64_t, int> kind_of;
  // Warm-up items without a request: the first pass through queues and stages is slower
  // (cold caches, first allocations) and is not part of the ground truth.
  for (int k = 0; k < 3; ++k) q1.push(Item{0, 0, k});
  for (int i = 0; i < 45; ++i) {
    const uint64_t req = new_request_id();
    kind_of[req] = i % 3;
    RequestScope scope(req);
    Span span("submit", "stage");
    const uint64_t f = new_flow_id();
    flow_start(f, "hop");
    q1.push(Item{req, f, i % 3});
  }
  q1.push(Item{0, 0, -1});
  t1.join();
  t2.join();
  t3.join();
  stop_tracing();
  Trace t = parse_trace(trace_json(), "pipeline");
  EXPECT_TRUE(check_trace(t).empty());
  const auto paths = extract_requests(t);
  ASSERT_EQ(paths.size(), kind_of.size());
  for (const RequestPath& p : paths) {
    const int kind = kind_of.at(p.id);
    ASSERT_EQ(p.stages.size(), 4u) << p.signature();
    EXPECT_EQ(p.signature(), std::string("submit>parse>") + (kind == 0 ? "cache_hit" : "compute") + ">respond");
    EXPECT_EQ(p.stages[0].tid, my_tid());
    for (int s = 0; s < 3; ++s) EXPECT_EQ(p.stages[s + 1].tid, tids[s]);
    // A stage hands the item on before its span closes, so the next may start a little
    // earlier than the previous ends; it never starts before the previous started.
    for (size_t s = 1; s < p.stages.size(); ++s) EXPECT_GT(p.stages[s].start, p.stages[s - 1].start);
    EXPECT_LE(p.latency, p.service + p.queue + 0.01);
    // End to end: until the last of its spans closes (under load a stage may close its span
    // after the next stage has already finished).
    double last_end = 0;
    for (const PathStage& st : p.stages) last_end = std::max(last_end, st.end);
    EXPECT_NEAR(p.latency, last_end - p.stages.front().start, 0.01);
    if (kind == 1) {
      EXPECT_GE(p.stages[2].end - p.stages[2].start, 29000.0);
    }
  }
  const auto clusters = cluster_requests(paths);
  ASSERT_EQ(clusters.size(), 3u) << format_requests(paths, clusters);
  for (const RequestCluster& c : clusters) {
    EXPECT_EQ(c.members.size(), 15u);
    const int kind = kind_of.at(c.members[0]);
    for (uint64_t m : c.members) EXPECT_EQ(kind_of.at(m), kind) << format_requests(paths, clusters);
    EXPECT_EQ(kind_of.at(c.representative), kind);
  }
  EXPECT_NE(format_requests(paths, clusters).find("edit distance 1"), std::string::npos);
}

TEST(Magpie, ThreadPoolTasksKeepTheRequest) {
  start_tracing();
  const uint64_t req = new_request_id();
  {
    RequestScope scope(req);
    parallel_for(0, 8, 1, [&](int64_t, int64_t) {
      Span span("task", "stage");
      EXPECT_EQ(current_request(), req);
    });
  }
  EXPECT_EQ(current_request(), 0u);
  stop_tracing();
  const auto paths = extract_requests(parse_trace(trace_json(), "pool"));
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].id, req);
  EXPECT_GE(paths[0].stages.size(), 1u);
}

TEST(Magpie, EditDistance) {
  EXPECT_EQ(edit_distance({"a", "b", "c"}, {"a", "c"}), 1);
  EXPECT_EQ(edit_distance({"a", "b"}, {"c", "d", "e"}), 3);
  EXPECT_EQ(edit_distance({}, {"x"}), 1);
}

// A function the sampler must find: it burns CPU and cannot be inlined or removed.
__attribute__((noinline)) double loom_test_hot_function(int64_t n) {
  volatile double x = 0;
  for (int64_t i = 0; i < n; ++i) x = x * 0.999999 + 1e-9 * static_cast<double>(i);
  return x;
}

TEST(Sampler, MostSamplesLandInTheHotFunction) {
  start_sampling(1000);
  double cpu0 = static_cast<double>(std::clock()) / CLOCKS_PER_SEC, sink = 0;
  // ~0.4 s of CPU time in the hot function (CPU time, so machine load does not matter).
  while (static_cast<double>(std::clock()) / CLOCKS_PER_SEC - cpu0 < 0.4) sink += loom_test_hot_function(2000000);
  SampleProfile p = stop_sampling();
  EXPECT_GT(sink, 0);
  ASSERT_GE(p.samples, 100) << p.top_table();
  EXPECT_GE(p.samples_in("loom_test_hot_function"), p.samples * 7 / 10) << p.top_table();
  EXPECT_EQ(p.dropped, 0);
  // Folded stacks round-trip; the flame graph names the function.
  SampleProfile back = parse_folded(p.folded(), "folded");
  EXPECT_EQ(back.samples, p.samples);
  EXPECT_EQ(back.samples_in("loom_test_hot_function"), p.samples_in("loom_test_hot_function"));
  const std::string svg = p.flamegraph_svg();
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("loom_test_hot_function"), std::string::npos);
  EXPECT_THROW(stop_sampling(), Error);
  EXPECT_THROW(parse_folded("a;b notanumber\n", "bad"), Error);
}

TEST(Sampler, TimerFallbackWorks) {
  setenv("LOOM_SAMPLER", "timer", 1);
  start_sampling(200);
  unsetenv("LOOM_SAMPLER");
  const double cpu0 = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
  double sink = 0;
  while (static_cast<double>(std::clock()) / CLOCKS_PER_SEC - cpu0 < 0.4) sink += loom_test_hot_function(2000000);
  SampleProfile p = stop_sampling();
  EXPECT_GT(sink, 0);
  EXPECT_NE(p.mechanism.find("timers"), std::string::npos);
  ASSERT_GE(p.samples, 40) << p.top_table();
  EXPECT_GE(p.samples_in("loom_test_hot_function"), p.samples * 7 / 10) << p.top_table();
}

TEST(Sampler, SamplesWorkerThreadsToo) {
  set_num_threads(2);
  start_sampling(1000);
  const double cpu0 = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
  // Let the helper arm the pool's workers before the work starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  while (static_cast<double>(std::clock()) / CLOCKS_PER_SEC - cpu0 < 0.6)
    parallel_for(0, 2, 1, [](int64_t, int64_t) { loom_test_hot_function(3000000); });
  SampleProfile p = stop_sampling();
  int64_t on_workers = 0;
  for (const auto& [frames, count] : p.stacks)
    if (frames[0].rfind("loom-pool", 0) == 0) on_workers += count;
  EXPECT_GE(on_workers, p.samples / 5) << p.top_table();
}

}  // namespace
}  // namespace loom::profile
