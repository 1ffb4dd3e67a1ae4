// loom/sched: cluster scheduling simulators, no tensors. This header: Omega (Schwarzkopf et
// al., EuroSys'13) — flexible, scalable schedulers for large compute clusters.
//
// The one idea: instead of one scheduler (monolithic) or a resource manager that locks out
// everyone but the scheduler it is offering resources to (two-level, Mesos), give every
// scheduler a private copy of the whole cell state, let them all plan in parallel, and commit
// each plan as an optimistic transaction against the shared state; a transaction fails only
// where it really conflicts. The price is redone work, which the simulator measures.
//
// The model (the paper's "lightweight simulator"): a cell of identical machines with CPU and
// memory; jobs of two types (batch: many short jobs; service: fewer, long-running), each a set
// of identical tasks; schedulers that take a job from their queue, "think" for
// t_job + t_task x tasks seconds (busy), then place its tasks. Placement is randomized first
// fit. Everything is a deterministic function of the options and the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::sched {

enum class JobType { kBatch = 0, kService = 1 };

enum class Architecture {
  kMonolithicSingle,  // one scheduler, the service decision time for every job
  kMonolithicMulti,   // one scheduler, per-type decision times (a fast path for batch)
  kTwoLevel,          // Mesos: one offer of all free resources at a time (pessimistic)
  kSharedState,       // Omega: private snapshots, optimistic commits
};
const char* architecture_name(Architecture a);
Architecture parse_architecture(const std::string& s);  // mono-single, mono-multi, mesos, omega

enum class ConflictMode { kCoarse, kFine };  // coarse: any change to the machine; fine: no longer fits
enum class CommitMode { kGang, kIncremental };

// A distribution of a positive quantity: exponential with a mean, a constant, or an
// empirical list of values sampled uniformly.
struct Dist {
  enum Kind { kExponential, kConstant, kEmpirical } kind = kExponential;
  double mean = 1;
  std::vector<double> values;
  static Dist exponential(double mean) { return {kExponential, mean, {}}; }
  static Dist constant(double v) { return {kConstant, v, {}}; }
  static Dist empirical(std::vector<double> v);  // throws on an empty list or non-positive values
};

struct JobTypeParams {
  Dist interarrival, tasks, duration;  // seconds, tasks per job (rounded, >= 1), seconds
  double cpu = 0.3, mem_gb = 0.5;      // per task
  double t_job = 0.1, t_task = 0.005;  // decision time: t_job + t_task x tasks (seconds)
};

// One job of a workload (generated or read from a trace file).
struct JobSpec {
  double submit = 0;
  JobType type = JobType::kBatch;
  int32_t tasks = 1;
  double duration = 1;  // every task runs this long once placed
  double cpu = 0, mem_gb = 0;
};

struct OmegaOptions {
  Architecture arch = Architecture::kSharedState;
  int32_t machines = 10000;
  double machine_cpu = 4, machine_mem_gb = 16;
  double hours = 24;
  uint64_t seed = 1;
  JobTypeParams batch, service;
  int32_t batch_schedulers = 1;  // shared-state and two-level: batch jobs spread round-robin
  ConflictMode conflict = ConflictMode::kFine;
  CommitMode commit = CommitMode::kIncremental;
  int32_t max_attempts = 1000;   // a job is abandoned after this many scheduling attempts
  double initial_fill = 0.0;     // fraction of the cell's CPU held at t=0 by service tasks lasting the whole run
  OmegaOptions();
};

// The workload the options describe (Poisson arrivals per type over `hours`), sorted by time.
std::vector<JobSpec> generate_workload(const OmegaOptions& o);
// Trace files: CSV with a header line "submit_s,type,tasks,duration_s,cpu,mem_gb"; type is
// batch or service. Throws loom::Error naming the file and line.
std::vector<JobSpec> read_workload(const std::string& path);
std::vector<JobSpec> parse_workload(const std::string& text, const std::string& what);

struct TypeMetrics {
  int64_t jobs = 0, scheduled = 0, abandoned = 0;
  double wait_mean = 0, wait_p90 = 0;       // submission -> first scheduling attempt starts (s)
  double placed_mean = 0, placed_p90 = 0;   // submission -> all tasks placed (s), scheduled jobs
  double attempts_mean = 0;
};

struct SchedulerMetrics {
  std::string name;
  double busy = 0;        // fraction of the run spent deciding
  double wasted = 0;      // fraction spent on attempts whose commit conflicted
  int64_t transactions = 0, conflicted = 0;
  double conflict_fraction() const { return transactions ? static_cast<double>(conflicted) / transactions : 0; }
};

struct OmegaResult {
  TypeMetrics batch, service;
  std::vector<SchedulerMetrics> schedulers;
  double utilization_cpu = 0;  // mean allocated CPU / capacity
  double sim_seconds = 0, wall_seconds = 0;
  int64_t events = 0, tasks_placed = 0;
  double conflict_fraction() const;  // over all schedulers
};

OmegaResult simulate_omega(const OmegaOptions& o, const std::vector<JobSpec>& jobs);
inline OmegaResult simulate_omega(const OmegaOptions& o) { return simulate_omega(o, generate_workload(o)); }

std::string format_result(const OmegaOptions& o, const OmegaResult& r);

}  // namespace loom::sched
