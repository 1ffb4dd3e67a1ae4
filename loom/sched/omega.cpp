#include "loom/sched/omega.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <queue>
#include <random>
#include <sstream>
#include <unordered_map>

#include "loom/base/error.h"
#include "loom/base/file.h"

namespace loom::sched {

const char* architecture_name(Architecture a) {
  switch (a) {
    case Architecture::kMonolithicSingle: return "mono-single";
    case Architecture::kMonolithicMulti: return "mono-multi";
    case Architecture::kTwoLevel: return "mesos";
    case Architecture::kSharedState: return "omega";
  }
  return "?";
}

Architecture parse_architecture(const std::string& s) {
  for (Architecture a : {Architecture::kMonolithicSingle, Architecture::kMonolithicMulti, Architecture::kTwoLevel,
                         Architecture::kSharedState})
    if (s == architecture_name(a)) return a;
  LOOM_THROW("unknown scheduler architecture '{}' (mono-single, mono-multi, mesos, omega)", s);
}

Dist Dist::empirical(std::vector<double> v) {
  LOOM_CHECK(!v.empty(), "empirical distribution: no values");
  for (double x : v) LOOM_CHECK(x > 0 && std::isfinite(x), "empirical distribution: value {} is not positive", x);
  return {kEmpirical, 0, std::move(v)};
}

OmegaOptions::OmegaOptions() {
  // Defaults in the spirit of the paper's cells (not Google's trace): batch jobs every 1.2 s
  // with ~80 short tasks, service jobs every 30 s with ~20 tasks running for hours; the cell
  // starts 30% full of long-running service tasks. About 55-60% of the CPU is in use.
  batch = {Dist::exponential(1.2), Dist::exponential(80), Dist::exponential(300), 0.3, 0.5, 0.1, 0.005};
  service = {Dist::exponential(30), Dist::exponential(20), Dist::exponential(14400), 0.5, 1.0, 0.1, 0.005};
  initial_fill = 0.3;
}

namespace {

double sample(const Dist& d, std::mt19937_64& rng) {
  switch (d.kind) {
    case Dist::kExponential: return std::exponential_distribution<double>(1.0 / d.mean)(rng);
    case Dist::kConstant: return d.mean;
    case Dist::kEmpirical: return d.values[std::uniform_int_distribution<size_t>(0, d.values.size() - 1)(rng)];
  }
  return d.mean;
}

}  // namespace

std::vector<JobSpec> generate_workload(const OmegaOptions& o) {
  LOOM_CHECK(o.hours > 0 && o.machines > 0, "omega: hours {} and machines {} must be positive", o.hours, o.machines);
  std::vector<JobSpec> jobs;
  const double end = o.hours * 3600;
  for (JobType type : {JobType::kBatch, JobType::kService}) {
    const JobTypeParams& p = type == JobType::kBatch ? o.batch : o.service;
    // One stream per type, so changing one type's parameters leaves the other's jobs alone.
    std::mt19937_64 rng(o.seed * 2 + static_cast<uint64_t>(type));
    for (double t = sample(p.interarrival, rng); t < end; t += sample(p.interarrival, rng)) {
      JobSpec j;
      j.submit = t;
      j.type = type;
      j.tasks = std::max<int32_t>(1, static_cast<int32_t>(std::lround(sample(p.tasks, rng))));
      j.duration = std::max(1e-3, sample(p.duration, rng));
      j.cpu = p.cpu;
      j.mem_gb = p.mem_gb;
      jobs.push_back(j);
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const JobSpec& a, const JobSpec& b) { return a.submit < b.submit; });
  return jobs;
}

std::vector<JobSpec> parse_workload(const std::string& text, const std::string& what) {
  std::vector<JobSpec> jobs;
  std::stringstream ss(text);
  std::string line;
  int line_no = 0;
  while (std::getline(ss, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line_no == 1 && line.rfind("submit", 0) == 0) continue;  // header
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, ',')) f.push_back(x);
    LOOM_CHECK(f.size() == 6, "{}:{}: {} fields, expected 6 (submit_s,type,tasks,duration_s,cpu,mem_gb)", what, line_no,
               f.size());
    auto num = [&](int i, const char* name) {
      char* end = nullptr;
      const double v = std::strtod(f[i].c_str(), &end);
      LOOM_CHECK(end != f[i].c_str() && *end == '\0' && std::isfinite(v) && v >= 0, "{}:{}: {} '{}' is not a number >= 0",
                 what, line_no, name, f[i]);
      return v;
    };
    JobSpec j;
    j.submit = num(0, "submit_s");
    LOOM_CHECK(f[1] == "batch" || f[1] == "service", "{}:{}: type '{}' is not batch or service", what, line_no, f[1]);
    j.type = f[1] == "batch" ? JobType::kBatch : JobType::kService;
    const double tasks = num(2, "tasks");
    LOOM_CHECK(tasks >= 1 && tasks < 1e7 && tasks == std::floor(tasks), "{}:{}: tasks '{}' is not a count >= 1", what,
               line_no, f[2]);
    j.tasks = static_cast<int32_t>(tasks);
    j.duration = num(3, "duration_s");
    j.cpu = num(4, "cpu");
    j.mem_gb = num(5, "mem_gb");
    LOOM_CHECK(j.duration > 0, "{}:{}: duration must be positive", what, line_no);
    jobs.push_back(j);
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const JobSpec& a, const JobSpec& b) { return a.submit < b.submit; });
  return jobs;
}

std::vector<JobSpec> read_workload(const std::string& path) {
  return parse_workload(read_file(path), path);
}

double OmegaResult::conflict_fraction() const {
  int64_t t = 0, c = 0;
  for (const auto& s : schedulers) {
    t += s.transactions;
    c += s.conflicted;
  }
  return t ? static_cast<double>(c) / t : 0;
}

namespace {

enum EventKind : uint8_t { kArrival, kDecisionDone, kTaskEnd };

struct Event {
  double time;
  uint64_t seq;  // ties in time: first scheduled, first handled (determinism)
  EventKind kind;
  int32_t a, b;  // arrival: job; decision: scheduler; task end: machine, job
  bool operator>(const Event& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

struct JobState {
  JobSpec spec;
  int32_t remaining = 0, attempts = 0;
  double first_attempt = -1, done = -1;
  bool abandoned = false;
};

struct Placement {
  int32_t machine;
  uint32_t seq;  // the machine's change counter when planned (coarse conflicts)
};

struct Scheduler {
  explicit Scheduler(std::string n) : name(std::move(n)) {}
  std::string name;
  std::deque<int32_t> queue;
  bool busy = false, waiting_for_offer = false;
  int32_t job = -1;
  double started = 0, decision = 0;
  std::vector<Placement> plan;  // shared-state: planned on the snapshot at the attempt's start
  double busy_time = 0, wasted_time = 0;
  int64_t transactions = 0, conflicted = 0;
};

class OmegaSim {
 public:
  OmegaSim(const OmegaOptions& o, const std::vector<JobSpec>& jobs) : o_(o), rng_(o.seed * 7919 + 17) {
    LOOM_CHECK(o.machines > 0 && o.machine_cpu > 0 && o.machine_mem_gb > 0, "omega: bad cell ({} machines)", o.machines);
    LOOM_CHECK(o.batch_schedulers >= 1 && o.batch_schedulers <= 1024, "omega: batch_schedulers {} out of range",
               o.batch_schedulers);
    free_cpu_.assign(o.machines, o.machine_cpu);
    free_mem_.assign(o.machines, o.machine_mem_gb);
    mseq_.assign(o.machines, 0);
    for (const JobSpec& j : jobs) {
      LOOM_CHECK(j.cpu <= o.machine_cpu && j.mem_gb <= o.machine_mem_gb,
                 "omega: a task needs {} CPU / {} GB, more than a machine has", j.cpu, j.mem_gb);
      jobs_.push_back({j, j.tasks, 0, -1, -1, false});
    }
    const bool mono = o.arch == Architecture::kMonolithicSingle || o.arch == Architecture::kMonolithicMulti;
    if (mono) {
      scheds_.emplace_back("monolithic");
    } else {
      scheds_.emplace_back("service");
      for (int i = 0; i < o.batch_schedulers; ++i)
        scheds_.emplace_back(o.batch_schedulers == 1 ? std::string("batch") : fmt::format("batch{}", i));
    }
    fill_initial();
  }

  OmegaResult run() {
    const auto wall0 = std::chrono::steady_clock::now();
    end_ = o_.hours * 3600;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (jobs_[i].spec.submit < end_) push(jobs_[i].spec.submit, kArrival, static_cast<int32_t>(i), 0);
    while (!events_.empty()) {
      const Event e = events_.top();
      if (e.time > end_) break;
      events_.pop();
      ++n_events_;
      advance(e.time);
      switch (e.kind) {
        case kArrival: arrive(e.a); break;
        case kDecisionDone: decision_done(e.a); break;
        case kTaskEnd: task_end(e.a, e.b); break;
      }
    }
    advance(end_);
    OmegaResult r = metrics();
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return r;
  }

 private:
  void push(double t, EventKind k, int32_t a, int32_t b) { events_.push({t, next_seq_++, k, a, b}); }

  void advance(double t) {
    alloc_area_ += alloc_cpu_ * (t - now_);
    now_ = t;
  }

  void allocate(int32_t m, double cpu, double mem) {
    free_cpu_[m] -= cpu;
    free_mem_[m] -= mem;
    ++mseq_[m];
    alloc_cpu_ += cpu;
  }

  void fill_initial() {
    // Long-running service tasks holding `initial_fill` of the CPU for the whole run.
    const double target = o_.initial_fill * o_.machines * o_.machine_cpu;
    const double cpu = o_.service.cpu, mem = o_.service.mem_gb;
    for (double held = 0; held + cpu <= target;) {
      const int32_t m = find_fit(cpu, mem, nullptr);
      if (m < 0) break;
      allocate(m, cpu, mem);
      held += cpu;
    }
  }

  // Randomized first fit: scan from a random machine. `overlay` holds this plan's own
  // allocations (shared-state planning on a snapshot). -1 when nothing fits.
  int32_t find_fit(double cpu, double mem, std::unordered_map<int32_t, std::pair<double, double>>* overlay) {
    const int32_t M = o_.machines;
    const int32_t start = std::uniform_int_distribution<int32_t>(0, M - 1)(rng_);
    for (int32_t k = 0; k < M; ++k) {
      const int32_t m = start + k < M ? start + k : start + k - M;
      double fc = free_cpu_[m], fm = free_mem_[m];
      if (overlay) {
        auto it = overlay->find(m);
        if (it != overlay->end()) fc -= it->second.first, fm -= it->second.second;
      }
      if (fc >= cpu - 1e-9 && fm >= mem - 1e-9) return m;
    }
    return -1;
  }

  int32_t scheduler_for(const JobSpec& j) {
    if (scheds_.size() == 1) return 0;
    if (j.type == JobType::kService) return 0;
    return 1 + static_cast<int32_t>(batch_rr_++ % static_cast<uint64_t>(o_.batch_schedulers));
  }

  const JobTypeParams& params(const JobSpec& j) const {
    if (o_.arch == Architecture::kMonolithicSingle) return o_.service;  // one code path for all
    return j.type == JobType::kBatch ? o_.batch : o_.service;
  }

  void arrive(int32_t job) {
    const int32_t s = scheduler_for(jobs_[job].spec);
    scheds_[s].queue.push_back(job);
    try_start(s);
  }

  void try_start(int32_t s) {
    Scheduler& sc = scheds_[s];
    if (sc.busy || sc.waiting_for_offer || sc.queue.empty()) return;
    if (o_.arch == Architecture::kTwoLevel) {
      // Mesos: the allocator offers all free resources to one framework at a time, and they
      // stay locked while it decides (pessimistic concurrency).
      if (offer_holder_ >= 0 && offer_holder_ != s) {
        sc.waiting_for_offer = true;
        offer_waiters_.push_back(s);
        return;
      }
      offer_holder_ = s;
    }
    const int32_t job = sc.queue.front();
    sc.queue.pop_front();
    JobState& js = jobs_[job];
    ++js.attempts;
    if (js.first_attempt < 0) js.first_attempt = now_;
    const JobTypeParams& p = params(js.spec);
    sc.busy = true;
    sc.job = job;
    sc.started = now_;
    sc.decision = p.t_job + p.t_task * js.remaining;
    sc.plan.clear();
    if (o_.arch == Architecture::kSharedState) {
      // Plan now on the cell state as of now (the private snapshot); commit after deciding.
      std::unordered_map<int32_t, std::pair<double, double>> overlay;
      for (int32_t t = 0; t < js.remaining; ++t) {
        const int32_t m = find_fit(js.spec.cpu, js.spec.mem_gb, &overlay);
        if (m < 0) break;
        auto& o = overlay[m];
        o.first += js.spec.cpu;
        o.second += js.spec.mem_gb;
        sc.plan.push_back({m, mseq_[m]});
      }
    }
    push(now_ + sc.decision, kDecisionDone, s, 0);
  }

  void decision_done(int32_t s) {
    Scheduler& sc = scheds_[s];
    JobState& js = jobs_[sc.job];
    sc.busy_time += sc.decision;
    ++sc.transactions;
    int32_t placed = 0;
    if (o_.arch == Architecture::kSharedState) {
      // Commit the transaction: check each planned task against the shared state now.
      std::vector<int32_t> ok;
      int32_t conflicts = 0;
      std::unordered_map<int32_t, std::pair<double, double>> taken;  // this commit's own use
      for (const Placement& p : sc.plan) {
        bool conflict;
        if (o_.conflict == ConflictMode::kCoarse) {
          conflict = mseq_[p.machine] != p.seq;
        } else {
          auto& t = taken[p.machine];
          conflict = free_cpu_[p.machine] - t.first < js.spec.cpu - 1e-9 ||
                     free_mem_[p.machine] - t.second < js.spec.mem_gb - 1e-9;
          if (!conflict) t.first += js.spec.cpu, t.second += js.spec.mem_gb;
        }
        if (conflict) {
          ++conflicts;
        } else {
          ok.push_back(p.machine);
        }
      }
      const bool all_planned = static_cast<int32_t>(sc.plan.size()) == js.remaining;
      if (conflicts > 0) {
        ++sc.conflicted;
        const double share = o_.commit == CommitMode::kGang ? 1.0 : static_cast<double>(conflicts) / sc.plan.size();
        sc.wasted_time += sc.decision * share;
      }
      const bool commit = o_.commit == CommitMode::kIncremental || (conflicts == 0 && all_planned);
      if (commit) {
        for (int32_t m : ok) start_task(m, sc.job);
        placed = static_cast<int32_t>(ok.size());
      }
    } else {
      // Monolithic and two-level schedulers decide on the live state, which nobody else
      // allocates from meanwhile: no conflicts.
      for (int32_t t = 0; t < js.remaining; ++t) {
        const int32_t m = find_fit(js.spec.cpu, js.spec.mem_gb, nullptr);
        if (m < 0) break;
        start_task(m, sc.job);
        ++placed;
      }
    }
    js.remaining -= placed;
    tasks_placed_ += placed;
    const int32_t job = sc.job;
    sc.busy = false;
    sc.job = -1;
    if (js.remaining == 0) {
      js.done = now_;
    } else if (js.attempts >= o_.max_attempts) {
      js.abandoned = true;
    } else {
      sc.queue.push_back(job);  // retry after the jobs already waiting
    }
    if (o_.arch == Architecture::kTwoLevel && offer_holder_ == s) {
      offer_holder_ = -1;
      // Offer next to the longest-waiting framework, then let this one queue again.
      while (!offer_waiters_.empty() && offer_holder_ < 0) {
        const int32_t w = offer_waiters_.front();
        offer_waiters_.pop_front();
        scheds_[w].waiting_for_offer = false;
        try_start(w);
      }
    }
    try_start(s);
  }

  void start_task(int32_t m, int32_t job) {
    const JobSpec& j = jobs_[job].spec;
    allocate(m, j.cpu, j.mem_gb);
    push(now_ + j.duration, kTaskEnd, m, job);
  }

  void task_end(int32_t m, int32_t job) {
    const JobSpec& j = jobs_[job].spec;
    free_cpu_[m] += j.cpu;
    free_mem_[m] += j.mem_gb;
    ++mseq_[m];
    alloc_cpu_ -= j.cpu;
  }

  static double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  }

  OmegaResult metrics() const {
    OmegaResult r;
    r.sim_seconds = end_;
    r.events = n_events_;
    r.tasks_placed = tasks_placed_;
    r.utilization_cpu = alloc_area_ / (end_ * o_.machines * o_.machine_cpu);
    for (JobType type : {JobType::kBatch, JobType::kService}) {
      TypeMetrics& t = type == JobType::kBatch ? r.batch : r.service;
      std::vector<double> waits, placed;
      double attempts = 0;
      for (const JobState& js : jobs_) {
        if (js.spec.type != type || js.spec.submit >= end_) continue;
        ++t.jobs;
        if (js.abandoned) ++t.abandoned;
        if (js.first_attempt >= 0) waits.push_back(js.first_attempt - js.spec.submit);
        if (js.done >= 0) {
          ++t.scheduled;
          placed.push_back(js.done - js.spec.submit);
          attempts += js.attempts;
        }
      }
      double sum = 0;
      for (double w : waits) sum += w;
      t.wait_mean = waits.empty() ? 0 : sum / waits.size();
      t.wait_p90 = percentile(waits, 0.9);
      sum = 0;
      for (double w : placed) sum += w;
      t.placed_mean = placed.empty() ? 0 : sum / placed.size();
      t.placed_p90 = percentile(placed, 0.9);
      t.attempts_mean = t.scheduled ? attempts / t.scheduled : 0;
    }
    for (const Scheduler& s : scheds_) {
      // A decision still running at the end counts up to the end.
      const double busy = s.busy_time + (s.busy ? std::max(0.0, end_ - s.started) : 0);
      r.schedulers.push_back({s.name, busy / end_, s.wasted_time / end_, s.transactions, s.conflicted});
    }
    return r;
  }

  const OmegaOptions& o_;
  std::mt19937_64 rng_;
  std::vector<double> free_cpu_, free_mem_;
  std::vector<uint32_t> mseq_;
  std::vector<JobState> jobs_;
  std::vector<Scheduler> scheds_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t next_seq_ = 0, batch_rr_ = 0;
  int32_t offer_holder_ = -1;
  std::deque<int32_t> offer_waiters_;
  double now_ = 0, end_ = 0, alloc_cpu_ = 0, alloc_area_ = 0;
  int64_t n_events_ = 0, tasks_placed_ = 0;
};

}  // namespace

OmegaResult simulate_omega(const OmegaOptions& o, const std::vector<JobSpec>& jobs) {
  OmegaSim sim(o, jobs);
  return sim.run();
}

std::string format_result(const OmegaOptions& o, const OmegaResult& r) {
  std::string out = fmt::format(
      "omega sim: {} | {} machines x ({} CPU, {} GB), {:.1f} h simulated in {:.2f} s ({} events, {} tasks placed)\n",
      architecture_name(o.arch), o.machines, o.machine_cpu, o.machine_mem_gb, r.sim_seconds / 3600, r.wall_seconds,
      r.events, r.tasks_placed);
  if (o.arch == Architecture::kSharedState)
    out += fmt::format("conflicts: {}, commits: {}\n", o.conflict == ConflictMode::kCoarse ? "coarse" : "fine",
                       o.commit == CommitMode::kGang ? "gang" : "incremental");
  out += fmt::format("{:<8} {:>8} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}\n", "type", "jobs", "scheduled",
                     "abandoned", "wait_mean", "wait_p90", "placed_mean", "placed_p90", "attempts");
  for (const auto& [name, t] : {std::pair<const char*, const TypeMetrics&>{"batch", r.batch}, {"service", r.service}})
    out += fmt::format("{:<8} {:>8} {:>9} {:>9} {:>10.3f}s {:>10.3f}s {:>10.3f}s {:>10.3f}s {:>9.2f}\n", name, t.jobs,
                       t.scheduled, t.abandoned, t.wait_mean, t.wait_p90, t.placed_mean, t.placed_p90, t.attempts_mean);
  out += fmt::format("{:<12} {:>8} {:>8} {:>13} {:>10} {:>9}\n", "scheduler", "busy", "wasted", "transactions",
                     "conflicted", "conflict%");
  for (const auto& s : r.schedulers)
    out += fmt::format("{:<12} {:>7.1f}% {:>7.1f}% {:>13} {:>10} {:>8.2f}%\n", s.name, 100 * s.busy, 100 * s.wasted,
                       s.transactions, s.conflicted, 100 * s.conflict_fraction());
  out += fmt::format("CPU utilization {:.1f}%\n", 100 * r.utilization_cpu);
  return out;
}

}  // namespace loom::sched
