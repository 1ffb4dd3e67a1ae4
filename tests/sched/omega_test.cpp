// The Omega simulator on cases small enough to know the answer by hand, plus determinism and
// the workload generator's rates.
#include <gtest/gtest.h>

#include "loom/base/error.h"
#include "loom/sched/omega.h"

namespace loom::sched {
namespace {

// One machine of 4 CPU; jobs from a trace; decision times per type.
OmegaOptions tiny(Architecture arch, double service_tjob, double batch_tjob) {
  OmegaOptions o;
  o.arch = arch;
  o.machines = 1;
  o.machine_cpu = 4;
  o.machine_mem_gb = 16;
  o.hours = 1;
  o.initial_fill = 0;
  o.service.t_job = service_tjob;
  o.service.t_task = 0;
  o.batch.t_job = batch_tjob;
  o.batch.t_task = 0;
  return o;
}

// Service job (decides for 10 s from t=0) wants `svc_tasks` x `svc_cpu`; a batch job at t=1
// (decides 0.1 s) takes `batch_cpu` meanwhile. Both run for the whole hour.
OmegaResult race(ConflictMode c, CommitMode m, int svc_tasks, double svc_cpu, double batch_cpu) {
  OmegaOptions o = tiny(Architecture::kSharedState, 10, 0.1);
  o.conflict = c;
  o.commit = m;
  std::vector<JobSpec> jobs = {{0.0, JobType::kService, svc_tasks, 7200, svc_cpu, 1},
                               {1.0, JobType::kBatch, 1, 7200, batch_cpu, 1}};
  return simulate_omega(o, jobs);
}

TEST(Omega, FineConflictsOnlyWhenResourcesNoLongerFit) {
  // Batch takes 1 CPU: 3 remain, the service task (3 CPU) still fits.
  OmegaResult fine_ok = race(ConflictMode::kFine, CommitMode::kIncremental, 1, 3, 1);
  EXPECT_EQ(fine_ok.schedulers[0].conflicted, 0);
  EXPECT_EQ(fine_ok.service.scheduled, 1);
  EXPECT_EQ(fine_ok.service.attempts_mean, 1.0);
  // Coarse: the machine changed since the snapshot, so the same commit conflicts.
  OmegaResult coarse = race(ConflictMode::kCoarse, CommitMode::kIncremental, 1, 3, 1);
  EXPECT_EQ(coarse.schedulers[0].conflicted, 1);
  EXPECT_EQ(coarse.service.scheduled, 1);          // retried on a fresh snapshot and placed
  EXPECT_EQ(coarse.service.attempts_mean, 2.0);
  EXPECT_NEAR(coarse.schedulers[0].wasted * 3600, 10.0, 1e-6);  // one whole decision redone
  // Batch takes 2 CPU: only 2 remain, the 3-CPU task no longer fits — a real conflict.
  OmegaResult fine_bad = race(ConflictMode::kFine, CommitMode::kIncremental, 1, 3, 2);
  EXPECT_EQ(fine_bad.schedulers[0].conflicted, 1);
  EXPECT_EQ(fine_bad.service.scheduled, 0);  // never fits again within the hour
}

TEST(Omega, GangCommitsAllOrNothingIncrementalKeepsWhatFits) {
  // Two service tasks of 1.5 CPU; batch takes 2 CPU meanwhile: only one still fits.
  OmegaResult inc = race(ConflictMode::kFine, CommitMode::kIncremental, 2, 1.5, 2);
  EXPECT_EQ(inc.tasks_placed, 2);  // the batch task and one service task
  EXPECT_EQ(inc.schedulers[0].conflicted, 1);
  EXPECT_NEAR(inc.schedulers[0].wasted * 3600, 5.0, 1e-6);  // half the plan was wasted
  OmegaResult gang = race(ConflictMode::kFine, CommitMode::kGang, 2, 1.5, 2);
  EXPECT_EQ(gang.tasks_placed, 1);  // only the batch task: the gang never fits again
  EXPECT_NEAR(gang.schedulers[0].wasted * 3600, 10.0, 1e-6);
}

TEST(Omega, MonolithicSchedulersNeverConflictButSerialize) {
  for (Architecture a : {Architecture::kMonolithicSingle, Architecture::kMonolithicMulti}) {
    OmegaOptions o = tiny(a, 10, 0.1);
    std::vector<JobSpec> jobs = {{0.0, JobType::kService, 1, 7200, 3, 1}, {1.0, JobType::kBatch, 1, 7200, 1, 1}};
    OmegaResult r = simulate_omega(o, jobs);
    ASSERT_EQ(r.schedulers.size(), 1u);
    EXPECT_EQ(r.schedulers[0].conflicted, 0);
    // The batch job waits for the service decision (10 s from t=0, so 9 s after its arrival).
    EXPECT_NEAR(r.batch.wait_mean, 9.0, 1e-9);
    // Single-path: the batch job also takes the service decision time.
    EXPECT_NEAR(r.batch.placed_mean, a == Architecture::kMonolithicSingle ? 19.0 : 9.1, 1e-9);
  }
}

TEST(Omega, TwoLevelLocksOthersOutWhileAnOfferIsHeld) {
  OmegaOptions o = tiny(Architecture::kTwoLevel, 10, 0.1);
  std::vector<JobSpec> jobs = {{0.0, JobType::kService, 1, 7200, 1, 1}, {1.0, JobType::kBatch, 1, 7200, 1, 1}};
  OmegaResult r = simulate_omega(o, jobs);
  EXPECT_NEAR(r.batch.wait_mean, 9.0, 1e-9);  // waited for the service framework's offer
  // Shared state: the batch scheduler does not wait at all.
  OmegaOptions s = o;
  s.arch = Architecture::kSharedState;
  EXPECT_NEAR(simulate_omega(s, jobs).batch.wait_mean, 0.0, 1e-9);
}

TEST(Omega, JobsThatNeverFitAreAbandoned) {
  OmegaOptions o = tiny(Architecture::kSharedState, 0.1, 0.1);
  o.max_attempts = 5;
  std::vector<JobSpec> jobs = {{0.0, JobType::kBatch, 1, 7200, 3, 1}, {0.5, JobType::kBatch, 1, 10, 3, 1}};
  OmegaResult r = simulate_omega(o, jobs);
  EXPECT_EQ(r.batch.scheduled, 1);
  EXPECT_EQ(r.batch.abandoned, 1);
}

TEST(Omega, SameSeedSameResultAndSaneWorkload) {
  OmegaOptions o;
  o.machines = 500;
  o.hours = 2;
  o.batch.interarrival = Dist::exponential(20);
  o.service.interarrival = Dist::exponential(200);
  OmegaResult a = simulate_omega(o), b = simulate_omega(o);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.tasks_placed, b.tasks_placed);
  EXPECT_EQ(a.batch.wait_mean, b.batch.wait_mean);
  EXPECT_EQ(a.schedulers[1].conflicted, b.schedulers[1].conflicted);
  o.seed = 2;
  EXPECT_NE(simulate_omega(o).events, a.events);
  // Poisson arrivals: the mean inter-arrival time over a long window matches the parameter.
  OmegaOptions g;
  g.hours = 100;
  const auto jobs = generate_workload(g);
  int64_t batch = 0;
  for (const auto& j : jobs) batch += j.type == JobType::kBatch;
  EXPECT_NEAR(100 * 3600.0 / batch, 1.2, 0.02);
}

TEST(Omega, TraceFilesAreCheckedLineByLine) {
  auto jobs = parse_workload("submit_s,type,tasks,duration_s,cpu,mem_gb\n2,service,3,100,0.5,1\n1,batch,1,5,0.1,0.2\n",
                             "w.csv");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].type, JobType::kBatch);  // sorted by submission time
  EXPECT_EQ(jobs[1].tasks, 3);
  EXPECT_THROW(parse_workload("1,batch,0,5,0.1,0.2\n", "w.csv"), Error);
  EXPECT_THROW(parse_workload("1,gpu,1,5,0.1,0.2\n", "w.csv"), Error);
  EXPECT_THROW(parse_workload("1,batch,1,5,0.1\n", "w.csv"), Error);
  EXPECT_THROW(parse_workload("x,batch,1,5,0.1,0.2\n", "w.csv"), Error);
  EXPECT_THROW(parse_architecture("borg"), Error);
  OmegaOptions o = tiny(Architecture::kSharedState, 1, 1);
  EXPECT_THROW(simulate_omega(o, {{0, JobType::kBatch, 1, 5, 8, 1}}), Error);  // a task larger than a machine
}

}  // namespace
}  // namespace loom::sched
