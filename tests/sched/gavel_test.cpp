// Gavel's policies on cases whose optimum is known by hand, the round-based mechanism honouring
// an allocation, the real throughput data and trace, determinism and bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "loom/base/error.h"
#include "loom/sched/gavel.h"

namespace loom::sched {
namespace {

PolicyInput two_jobs_two_types() {
  // Job 0 runs 2x faster on type 1; job 1 runs equally fast on both. One accelerator each.
  PolicyInput in;
  in.T = {{1, 2}, {1, 1}};
  in.scale = {1, 1};
  in.weight = {1, 1};
  in.remaining = {100, 100};
  in.elapsed = {0, 0};
  in.capacity = {1, 1};
  return in;
}

double min_normalized(const PolicyInput& in, const std::vector<std::vector<double>>& x) {
  double m = 1e30;
  for (size_t i = 0; i < in.T.size(); ++i)
    m = std::min(m, effective_throughput(in, x, i) / equal_share_throughput(in, i));
  return m;
}

TEST(Gavel, MaxMinFairnessIsHeterogeneityAware) {
  const PolicyInput in = two_jobs_two_types();
  // Equal share: each job half of each type -> job 0: 1.5 steps/s, job 1: 1. The optimum gives
  // job 1 the slow type and job 0 the fast one: both normalized throughputs >= 1 (min = 1);
  // the swapped placement would give job 0 only 1/1.5.
  const auto x = solve_policy(GavelPolicy::kMaxMinFairness, in);
  EXPECT_NEAR(min_normalized(in, x), 1.0, 1e-6);
  EXPECT_GE(effective_throughput(in, x, 0), 1.5 - 1e-6);
  for (size_t j = 0; j < 2; ++j) EXPECT_LE(x[0][j] + x[1][j], 1.0 + 1e-6);  // capacity
  for (size_t m = 0; m < 2; ++m) EXPECT_LE(x[m][0] + x[m][1], 1.0 + 1e-6);  // time
  // The agnostic policy only equalizes time shares: half of each type for each job.
  const auto a = solve_policy(GavelPolicy::kMaxMinFairnessAgnostic, in);
  for (size_t m = 0; m < 2; ++m)
    for (size_t j = 0; j < 2; ++j) EXPECT_NEAR(a[m][j], 0.5, 1e-6);
}

TEST(Gavel, MaxThroughputPutsEachJobWhereItGainsMost) {
  // Job 0 runs 4x faster on type 1, job 1 the same on both: normalized by their equal-share
  // throughputs (2.5 and 1), job 0 on type 1 and job 1 on type 0 sum to 1.6 + 1 = 2.6 (the swap: 1.4).
  PolicyInput in = two_jobs_two_types();
  in.T = {{1, 4}, {1, 1}};
  const auto x = solve_policy(GavelPolicy::kMaxThroughput, in);
  EXPECT_NEAR(x[0][1], 1.0, 1e-6);
  EXPECT_NEAR(x[1][0], 1.0, 1e-6);
  EXPECT_NEAR(x[0][0] + x[1][1], 0.0, 1e-6);
}

TEST(Gavel, MakespanTimeSharesInProportionToWork) {
  PolicyInput in;
  in.T = {{1}, {1}};
  in.scale = {1, 1};
  in.weight = {1, 1};
  in.remaining = {100, 300};
  in.elapsed = {0, 0};
  in.capacity = {1};
  const auto x = solve_policy(GavelPolicy::kMinMakespan, in);
  EXPECT_NEAR(x[0][0], 0.25, 1e-6);  // both finish at t = 400
  EXPECT_NEAR(x[1][0], 0.75, 1e-6);
}

TEST(Gavel, FinishTimeFairnessByBisection) {
  // rho_m = finish time under X / finish time under an equal share. Job 0 runs 3x faster on
  // type 1; job 1 equally on both; one accelerator of each. Equal share (half of each type):
  // job 0 at 2 steps/s, job 1 at 1. Job 1 can never beat 1 step/s (it runs on one type at a
  // time), so the optimum is rho = 1, reached only with job 1 on the slow type and job 0 given
  // >= 2/3 of the fast one; the bisection's feasibility LPs then prefer throughput: all of it.
  PolicyInput in = two_jobs_two_types();
  in.T = {{1, 3}, {1, 1}};
  const auto x = solve_policy(GavelPolicy::kFinishTimeFairness, in);
  double rho_max = 0;
  for (size_t m = 0; m < 2; ++m)
    rho_max = std::max(rho_max, equal_share_throughput(in, m) / effective_throughput(in, x, m));
  EXPECT_NEAR(rho_max, 1.0, 1e-3);
  EXPECT_NEAR(x[1][0], 1.0, 1e-3);
  EXPECT_NEAR(x[0][1], 1.0, 1e-3);
}

TEST(Gavel, MinCostMeetsTheSloAsCheaplyAsPossible) {
  // One job needing 1.5 steps/s (150 steps left, 100 s to its SLO); type 0 gives 1 step/s at
  // $1/h, type 1 gives 2 at $3/h. Time on the two sums to at most 1: x0 + 2 x1 >= 1.5 and
  // x0 + x1 <= 1; the cheapest is half and half ($2/h) rather than 75% fast ($2.25/h).
  PolicyInput in;
  in.T = {{1, 2}};
  in.scale = {1};
  in.weight = {1};
  in.remaining = {150};
  in.elapsed = {0};
  in.deadline_left = {100};
  in.capacity = {1, 1};
  in.price = {1, 3};
  const auto x = solve_policy(GavelPolicy::kMinCost, in);
  EXPECT_NEAR(x[0][0], 0.5, 1e-6);
  EXPECT_NEAR(x[0][1], 0.5, 1e-6);
}

TEST(Gavel, FifoTakesTheFastestFreeType) {
  const PolicyInput in = two_jobs_two_types();
  const auto x = solve_policy(GavelPolicy::kFifo, in);
  EXPECT_EQ(x[0][1], 1.0);  // job 0 first: the fast type
  EXPECT_EQ(x[1][0], 1.0);  // job 1: what is left
}

GavelThroughputs toy_data() {
  GavelThroughputs t;
  t.gpu_types = {"k80", "p100", "v100"};
  t.isolated[{"A", 1}] = {1, 0, 0};
  t.isolated[{"B", 1}] = {1, 0, 0};
  return t;
}

TEST(Gavel, MechanismHonoursTheAllocationOverManyRounds) {
  // One k80, jobs needing 100 and 300 rounds of work: the makespan allocation 25% / 75%,
  // realized round by round, finishes both at ~400 rounds (A does not run first to completion).
  const GavelThroughputs t = toy_data();
  GavelOptions o;
  o.policy = GavelPolicy::kMinMakespan;
  o.cluster = {1, 0, 0};
  o.round_s = 1;
  std::vector<GavelJob> jobs = {{"A", 1, 100, 0, 1}, {"B", 1, 300, 0, 1}};
  const GavelResult r = simulate_gavel(t, o, jobs);
  EXPECT_EQ(r.completed, 2);
  EXPECT_NEAR(r.makespan_h * 3600, 400, 4);  // within 1% (round granularity)
  EXPECT_NEAR(r.avg_jct_h * 3600, 400, 4);   // both end together
  EXPECT_NEAR(r.utilization, 1.0, 1e-9);
  // FIFO runs A to completion first: JCTs 100 and 400.
  o.policy = GavelPolicy::kFifo;
  EXPECT_NEAR(simulate_gavel(t, o, jobs).avg_jct_h * 3600, 250, 1e-6);
}

TEST(Gavel, SpaceSharingPacksPairsThatGainFromIt) {
  // Alone each job does 1 step/s on the one k80; together each still does 0.8: sharing the
  // accelerator is worth 1.6 steps/s of the two. The LP takes the pair all the time, and the
  // two 100-step jobs finish at 125 s instead of ~200 s time-sliced.
  GavelThroughputs t = toy_data();
  t.colocated[{{"A", 1}, {"B", 1}}] = {{0.8, 0.8}, {0, 0}, {0, 0}};
  PolicyInput in;
  in.T = {{1, 0, 0}, {1, 0, 0}};
  in.scale = {1, 1};
  in.weight = {1, 1};
  in.remaining = {100, 100};
  in.elapsed = {0, 0};
  in.capacity = {1, 0, 0};
  in.pairs = {{0, 1, {0.8, 0, 0}, {0.8, 0, 0}}};
  const SharedAllocation sa = solve_max_min_space_sharing(in);
  EXPECT_NEAR(sa.y[0][0], 1.0, 1e-6);
  EXPECT_NEAR(sa.x[0][0] + sa.x[1][0], 0.0, 1e-6);
  GavelOptions o;
  o.cluster = {1, 0, 0};
  o.round_s = 1;
  std::vector<GavelJob> jobs = {{"A", 1, 100, 0, 1}, {"B", 1, 100, 0, 1}};
  const GavelResult alone = simulate_gavel(t, o, jobs);
  o.space_sharing = true;
  const GavelResult packed = simulate_gavel(t, o, jobs);
  EXPECT_NEAR(packed.makespan_h * 3600, 125, 1);
  EXPECT_NEAR(alone.makespan_h * 3600, 200, 2);
  EXPECT_GT(packed.shared_rounds, 100);
}

std::string data_path(const std::string& f) { return std::string(LOOM_SOURCE_DIR) + "/data/gavel/" + f; }

TEST(Gavel, RealDataTraceAndDeterminism) {
  const GavelThroughputs t = GavelThroughputs::load(data_path("simulation_throughputs.json"));
  EXPECT_EQ(t.models().size(), 26u);
  EXPECT_GT(t.isolated.at({"ResNet-50 (batch size 64)", 1})[2], t.isolated.at({"ResNet-50 (batch size 64)", 1})[0]);
  const auto trace = read_gavel_trace(data_path("msr_seed0_e13805.trace"));
  EXPECT_EQ(trace.size(), 607u);
  GavelOptions o;
  o.num_jobs = 60;
  o.jobs_per_hour = 0.5;
  const auto jobs = generate_gavel_jobs(t, o);
  const GavelResult a = simulate_gavel(t, o, jobs), b = simulate_gavel(t, o, generate_gavel_jobs(t, o));
  EXPECT_EQ(a.completed, 60);
  EXPECT_EQ(a.avg_jct_h, b.avg_jct_h);
  EXPECT_EQ(a.rounds, b.rounds);
  // Heterogeneity awareness pays: lower average JCT than the agnostic policy on the same jobs.
  o.policy = GavelPolicy::kMaxMinFairnessAgnostic;
  EXPECT_LT(a.avg_jct_h, simulate_gavel(t, o, jobs).avg_jct_h);
}

TEST(Gavel, BadInputIsAnError) {
  EXPECT_THROW(parse_gavel_trace("ResNet\tcmd\t-n\t1\t100\t0\n", "t"), Error);  // 6 fields
  EXPECT_THROW(parse_gavel_trace("ResNet\tcmd\t-n\t1\t-5\t0\t1\n", "t"), Error);
  EXPECT_THROW(GavelThroughputs::parse("{\"k80\": {}}", "x.json"), Error);
  EXPECT_THROW(parse_gavel_policy("srtf"), Error);
  const GavelThroughputs t = toy_data();
  GavelOptions o;
  o.cluster = {1, 0, 0};
  EXPECT_THROW(simulate_gavel(t, o, {{"A", 2, 10, 0, 1}}), Error);  // 2 accelerators: the cluster has 1 k80
  o.cluster = {2, 0, 0};
  EXPECT_EQ(simulate_gavel(t, o, {{"A", 2, 10, 0, 1}}).extrapolated, 1);  // scaled from the 1-GPU figure
  o.extrapolate_scale = false;
  EXPECT_THROW(simulate_gavel(t, o, {{"A", 2, 10, 0, 1}}), Error);
  EXPECT_THROW(simulate_gavel(t, o, {{"C", 1, 10, 0, 1}}), Error);  // unknown job type
}

}  // namespace
}  // namespace loom::sched
