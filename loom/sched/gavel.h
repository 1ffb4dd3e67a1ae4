// Gavel (Narayanan et al., OSDI'20): heterogeneity-aware cluster scheduling for deep learning.
//
// The one idea: express a scheduling policy as an optimization over an allocation matrix
// X[job][accelerator type] — the fraction of time each job should spend on each type — in
// terms of *effective throughput* throughput(m, X) = sum_j T[m][j] X[m][j], where T is the
// measured throughput of job m on type j. Heterogeneity-agnostic policies (treating every GPU
// alike) become heterogeneity-aware by this one substitution. A round-based mechanism then
// realizes X over time: every round, each (job, type) pair's priority is its target share
// divided by the share it has received, and accelerators go to the highest priorities.
//
// Policies are linear programs solved by COIN-OR CLP (no hand-written simplex); finish-time
// fairness, which is not linear in X, is solved exactly as a bisection over a sequence of
// feasibility LPs (see gavel.cpp). Everything is deterministic for a seed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom::sched {

// Measured throughputs (steps/s) of job types on accelerator types, isolated, from the Gavel
// repository's simulation_throughputs.json (../shared/data/gavel).
struct GavelThroughputs {
  std::vector<std::string> gpu_types;  // e.g. k80, p100, v100
  // (model, scale factor) -> steps/s per gpu type (0 = no measurement)
  std::map<std::pair<std::string, int>, std::vector<double>> isolated;
  // (job, other job) co-located on one accelerator -> per gpu type (this job's, other's)
  // steps/s; used by space sharing.
  std::map<std::pair<std::pair<std::string, int>, std::pair<std::string, int>>, std::vector<std::pair<double, double>>>
      colocated;
  static GavelThroughputs load(const std::string& path);
  static GavelThroughputs parse(const std::string& json_text, const std::string& what);
  std::vector<std::string> models() const;  // distinct job types
};

struct GavelJob {
  std::string model;
  int32_t scale = 1;   // accelerators it needs at once (all of one type)
  double total_steps = 0;
  double arrival = 0;  // s
  double weight = 1;
  double slo_s = 0;    // must finish within this long after arrival (0: no SLO)
};

enum class GavelPolicy {
  kMaxMinFairness,          // LAS, heterogeneity-aware
  kMaxMinFairnessAgnostic,  // LAS treating every accelerator alike
  kFinishTimeFairness,      // Themis' rho, heterogeneity-aware (bisection over LPs)
  kMinMakespan,
  kMaxThroughput,           // maximize the sum of normalized effective throughputs
  kFifo,                    // arrival order, each job on the fastest type with room
  kMinCost,                 // cheapest X meeting SLOs (others: at least their equal-share rate)
};
const char* gavel_policy_name(GavelPolicy p);
GavelPolicy parse_gavel_policy(const std::string& s);  // max_min, max_min_agnostic, ftf, makespan, max_throughput, fifo

// Default accelerator prices, $ per accelerator-hour (on-demand cloud prices of a K80, P100 and
// V100 instance GPU, as Gavel's cost experiments use; configurable).
inline const std::vector<double> kDefaultPrices = {0.9, 1.46, 3.06};

// One allocation problem: M jobs x J types.
struct PolicyInput {
  std::vector<std::vector<double>> T;  // steps/s of job m on type j (0: cannot run there)
  std::vector<int32_t> scale;          // accelerators per job
  std::vector<double> weight;          // priority weights (max-min)
  std::vector<double> remaining;       // steps left (makespan, finish-time fairness)
  std::vector<double> elapsed;         // seconds since arrival (finish-time fairness)
  std::vector<int32_t> capacity;       // accelerators per type
  std::vector<double> deadline_left;   // seconds to the SLO (min_cost); empty or <= 0 entries: none / late
  std::vector<double> price;           // $ per accelerator-hour per type (min_cost); empty: kDefaultPrices
  // Space sharing: pairs of 1-accelerator jobs that may share one accelerator, with each
  // one's throughput per type when they do (0: not on that type).
  struct Pair {
    int32_t a, b;
    std::vector<double> ta, tb;
  };
  std::vector<Pair> pairs;
};

// Max-min fairness (heterogeneity-aware) with space sharing: X for jobs alone and Y[p][j] for
// pair p sharing one accelerator of type j; a job's time over its single and pair options sums
// to <= 1 and a pair takes one accelerator. One LP (Gavel section 4.2).
struct SharedAllocation {
  std::vector<std::vector<double>> x, y;
};
SharedAllocation solve_max_min_space_sharing(const PolicyInput& in);
// X[m][j] in [0, 1], sum_j X[m][j] <= 1, sum_m X[m][j] * scale[m] <= capacity[j].
std::vector<std::vector<double>> solve_policy(GavelPolicy p, const PolicyInput& in);
// throughput(m, X) and the equal-share throughput every normalization uses.
double effective_throughput(const PolicyInput& in, const std::vector<std::vector<double>>& x, size_t m);
double equal_share_throughput(const PolicyInput& in, size_t m);

struct GavelOptions {
  GavelPolicy policy = GavelPolicy::kMaxMinFairness;
  std::vector<int32_t> cluster = {12, 12, 12};  // accelerators per gpu type, in gpu_types order
  double round_s = 360;
  uint64_t seed = 1;
  // Generated workload: Poisson arrivals at `jobs_per_hour`, `num_jobs` jobs.
  double jobs_per_hour = 0.5;
  int32_t num_jobs = 200;
  // Jobs [measure_from, measure_to) (by arrival order) count for the JCT metrics; Gavel
  // measures a window of a continuous stream so the start-up and drain do not dominate.
  int32_t measure_from = 0, measure_to = -1;  // -1: all
  // SLOs in generated jobs: this fraction gets a deadline of 1.2x, 2x or 10x its duration.
  double slo_fraction = 0;
  std::vector<double> price = kDefaultPrices;
  // Space sharing (max_min only): 1-accelerator jobs may be packed in pairs on one accelerator
  // using the data's co-location throughputs.
  bool space_sharing = false;
  // Gavel's traces contain multi-accelerator jobs of types the data measured only on one
  // (A3C, CycleGAN). With this set, such a job's throughput is the 1-accelerator figure times
  // its scale (linear scaling: optimistic) and the result counts them; otherwise an error.
  bool extrapolate_scale = true;
};

// Gavel's generator: uniform job type, scale 1/2/4/8 with p = 0.7/0.1/0.15/0.05 (where the
// data has that scale), duration 60*10^U(1.5,3) s with p = 0.8 else 60*10^U(3,4) s, converted
// to steps with the type's isolated throughput on the fastest accelerator (v100); with
// slo_fraction > 0, that fraction of jobs gets an SLO of 1.2x, 2x or 10x the duration.
std::vector<GavelJob> generate_gavel_jobs(const GavelThroughputs& t, const GavelOptions& o);
// Gavel's tab-separated trace: job type, command, steps argument, needs-data-dir, total
// steps, arrival time (s), scale factor. Throws loom::Error naming file and line.
std::vector<GavelJob> read_gavel_trace(const std::string& path);
std::vector<GavelJob> parse_gavel_trace(const std::string& text, const std::string& what);

struct GavelResult {
  int64_t jobs = 0, completed = 0, rounds = 0, lp_solves = 0;
  int64_t extrapolated = 0;  // jobs whose throughput was scaled from the 1-accelerator measurement
  double avg_jct_h = 0, p90_jct_h = 0;  // measured window, hours
  double makespan_h = 0;
  double utilization = 0;               // accelerator-time used / available until the last completion
  double ftf_mean = 0, ftf_max = 0;     // JCT / JCT with an equal share of the cluster alone
  double cost = 0;                      // $ of accelerator time used (all jobs)
  int64_t slo_jobs = 0, slo_missed = 0;
  int64_t shared_rounds = 0;            // (pair, round)s that ran two jobs on one accelerator
  double wall_seconds = 0;
};

GavelResult simulate_gavel(const GavelThroughputs& t, const GavelOptions& o, const std::vector<GavelJob>& jobs);

}  // namespace loom::sched
