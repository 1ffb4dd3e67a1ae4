// `loom sim omega` (one run) and `loom sim omega-sweep` (the paper's experiments as tables):
// cluster-scheduler architectures in the Omega lightweight simulator (loom/sched/omega.h).
#include <algorithm>
#include <fstream>
#include <sstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/loom/commands.h"
#include "loom/base/error.h"
#include "loom/sched/gavel.h"
#include "loom/sched/omega.h"

namespace loom::cli {
namespace {

struct SimOptions {
  sched::OmegaOptions o;
  std::string arch = "omega", conflict = "fine", commit = "incremental", trace, json, sweep = "decision-time";
  double service_tjob = 0.1, batch_tjob = 0.1;
};

void apply(SimOptions& s) {
  s.o.arch = sched::parse_architecture(s.arch);
  LOOM_CHECK(s.conflict == "coarse" || s.conflict == "fine", "--conflict: '{}' is not coarse or fine", s.conflict);
  LOOM_CHECK(s.commit == "gang" || s.commit == "incremental", "--commit: '{}' is not gang or incremental", s.commit);
  s.o.conflict = s.conflict == "coarse" ? sched::ConflictMode::kCoarse : sched::ConflictMode::kFine;
  s.o.commit = s.commit == "gang" ? sched::CommitMode::kGang : sched::CommitMode::kIncremental;
  s.o.service.t_job = s.service_tjob;
  s.o.batch.t_job = s.batch_tjob;
}

nlohmann::json record(const sched::OmegaOptions& o, const sched::OmegaResult& r) {
  nlohmann::json scheds = nlohmann::json::array();
  for (const auto& s : r.schedulers)
    scheds.push_back({{"name", s.name}, {"busy", s.busy}, {"wasted", s.wasted}, {"transactions", s.transactions},
                      {"conflicted", s.conflicted}, {"conflict_fraction", s.conflict_fraction()}});
  auto type = [](const sched::TypeMetrics& t) {
    return nlohmann::json{{"jobs", t.jobs},           {"scheduled", t.scheduled},   {"abandoned", t.abandoned},
                          {"wait_mean", t.wait_mean}, {"wait_p90", t.wait_p90},     {"placed_mean", t.placed_mean},
                          {"placed_p90", t.placed_p90}, {"attempts_mean", t.attempts_mean}};
  };
  return {{"arch", sched::architecture_name(o.arch)},
          {"conflict", o.conflict == sched::ConflictMode::kCoarse ? "coarse" : "fine"},
          {"commit", o.commit == sched::CommitMode::kGang ? "gang" : "incremental"},
          {"service_tjob", o.service.t_job},
          {"batch_tjob", o.batch.t_job},
          {"batch_schedulers", o.batch_schedulers},
          {"machines", o.machines},
          {"hours", o.hours},
          {"seed", o.seed},
          {"batch", type(r.batch)},
          {"service", type(r.service)},
          {"schedulers", scheds},
          {"conflict_fraction", r.conflict_fraction()},
          {"utilization_cpu", r.utilization_cpu},
          {"wall_seconds", r.wall_seconds},
          {"events", r.events}};
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream out(path);
  LOOM_CHECK(out.good(), "cannot write {}", path);
  out << j.dump(2) << "\n";
}

int run_one(SimOptions s) {
  apply(s);
  std::vector<sched::JobSpec> jobs = s.trace.empty() ? sched::generate_workload(s.o) : sched::read_workload(s.trace);
  const sched::OmegaResult r = sched::simulate_omega(s.o, jobs);
  std::printf("%s", sched::format_result(s.o, r).c_str());
  write_json(s.json, record(s.o, r));
  return 0;
}

const sched::SchedulerMetrics& find_sched(const sched::OmegaResult& r, const std::string& name) {
  for (const auto& s : r.schedulers)
    if (s.name == name) return s;
  return r.schedulers.front();
}

int run_sweep(SimOptions s) {
  apply(s);
  nlohmann::json records = nlohmann::json::array();
  const std::vector<double> tjobs = {0.1, 1, 3, 10, 30, 100};
  if (s.sweep == "decision-time") {
    // Omega paper Fig. 5/6: the service scheduler's decision time grows; who suffers?
    std::printf("%-12s %8s %12s %12s %14s %12s %10s\n", "arch", "t_job(s)", "batch_wait", "service_wait",
                "svc/mono_busy", "batch_busy", "abandoned");
    for (const std::string arch : {"mono-single", "mono-multi", "mesos", "omega"}) {
      for (double t : tjobs) {
        SimOptions x = s;
        x.arch = arch;
        x.service_tjob = t;
        apply(x);
        const sched::OmegaResult r = sched::simulate_omega(x.o);
        const bool mono = arch.rfind("mono", 0) == 0;
        const double svc_busy = r.schedulers[0].busy;
        const double batch_busy = mono ? r.schedulers[0].busy : find_sched(r, "batch").busy;
        std::printf("%-12s %8.1f %11.2fs %11.2fs %13.1f%% %11.1f%% %10lld\n", arch.c_str(), t, r.batch.wait_mean,
                    r.service.wait_mean, 100 * svc_busy, 100 * batch_busy,
                    static_cast<long long>(r.batch.abandoned + r.service.abandoned));
        std::fflush(stdout);
        records.push_back(record(x.o, r));
      }
    }
  } else if (s.sweep == "conflicts") {
    // Omega paper Fig. 7/8: conflict fraction against the service decision time, for the
    // conflict-detection and commit modes.
    std::printf("%-7s %-12s %8s %12s %12s %12s %12s\n", "detect", "commit", "t_job(s)", "svc_conflict", "svc_busy",
                "svc_wasted", "batch_wait");
    for (const std::string conflict : {"coarse", "fine"}) {
      for (const std::string commit : {"gang", "incremental"}) {
        for (double t : tjobs) {
          SimOptions x = s;
          x.arch = "omega";
          x.conflict = conflict;
          x.commit = commit;
          x.service_tjob = t;
          apply(x);
          const sched::OmegaResult r = sched::simulate_omega(x.o);
          const auto& svc = find_sched(r, "service");
          std::printf("%-7s %-12s %8.1f %11.2f%% %11.1f%% %11.1f%% %11.2fs\n", conflict.c_str(), commit.c_str(), t,
                      100 * svc.conflict_fraction(), 100 * svc.busy, 100 * svc.wasted, r.batch.wait_mean);
          std::fflush(stdout);
          records.push_back(record(x.o, r));
        }
      }
    }
  } else if (s.sweep == "scaling") {
    // Omega paper Fig. 9: a batch workload too heavy for one scheduler, spread over several.
    std::printf("%10s %12s %12s %14s %12s\n", "batch_scheds", "batch_wait", "batch_busy", "batch_conflict",
                "abandoned");
    for (int k : {1, 2, 3, 4, 6, 8}) {
      SimOptions x = s;
      x.arch = "omega";
      x.o.batch_schedulers = k;
      x.batch_tjob = s.batch_tjob < 0.5 ? 1.0 : s.batch_tjob;  // 1 s + 5 ms/task: one scheduler saturates
      apply(x);
      const sched::OmegaResult r = sched::simulate_omega(x.o);
      double busy = 0;
      int64_t tr = 0, co = 0;
      for (const auto& sc : r.schedulers)
        if (sc.name != "service") busy += sc.busy / k, tr += sc.transactions, co += sc.conflicted;
      std::printf("%10d %11.2fs %11.1f%% %13.2f%% %12lld\n", k, r.batch.wait_mean, 100 * busy,
                  tr ? 100.0 * co / tr : 0.0, static_cast<long long>(r.batch.abandoned));
      std::fflush(stdout);
      records.push_back(record(x.o, r));
    }
  } else {
    LOOM_THROW("--sweep: '{}' is not decision-time, conflicts or scaling", s.sweep);
  }
  write_json(s.json, records);
  return 0;
}

void add_common(CLI::App* cmd, SimOptions& s) {
  cmd->add_option("--machines", s.o.machines, "machines in the cell")->capture_default_str()->check(CLI::Range(1, 10000000));
  cmd->add_option("--hours", s.o.hours, "simulated time")->capture_default_str()->check(CLI::Range(0.001, 10000.0));
  cmd->add_option("--seed", s.o.seed, "workload and placement seed")->capture_default_str();
  cmd->add_option("--batch-tjob", s.batch_tjob, "batch decision time per job (s)")->capture_default_str();
  cmd->add_option("--batch-ttask", s.o.batch.t_task, "batch decision time per task (s)")->capture_default_str();
  cmd->add_option("--service-ttask", s.o.service.t_task, "service decision time per task (s)")->capture_default_str();
  cmd->add_option("--initial-fill", s.o.initial_fill, "CPU fraction held by long-running tasks at t=0")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-attempts", s.o.max_attempts, "attempts before a job is abandoned")->capture_default_str();
  cmd->add_option("--json", s.json, "write the result(s) as JSON");
}

struct GavelCli {
  sched::GavelOptions o;
  std::string policy = "max_min", cluster = "v100=12,p100=12,k80=12", trace, json;
  std::string throughputs = "data/gavel/simulation_throughputs.json";
  bool generate = false;
  std::string policies = "max_min,max_min_agnostic,fifo", rates_x100 = "20,30,40,50,60,70";
};

// "v100=12,p100=12,k80=12" in the data's type order.
std::vector<int32_t> parse_cluster(const std::string& s, const sched::GavelThroughputs& t) {
  std::vector<int32_t> out(t.gpu_types.size(), 0);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    LOOM_CHECK(eq != std::string::npos, "--cluster: '{}' is not type=count", item);
    const std::string type = item.substr(0, eq);
    const auto it = std::find(t.gpu_types.begin(), t.gpu_types.end(), type);
    LOOM_CHECK(it != t.gpu_types.end(), "--cluster: unknown accelerator type '{}' (k80, p100, v100)", type);
    char* end = nullptr;
    const long n = std::strtol(item.c_str() + eq + 1, &end, 10);
    LOOM_CHECK(*end == '\0' && n >= 0 && n < 1000000, "--cluster: bad count in '{}'", item);
    out[it - t.gpu_types.begin()] = static_cast<int32_t>(n);
  }
  return out;
}

nlohmann::json gavel_record(const GavelCli& g, const sched::GavelResult& r) {
  return {{"policy", sched::gavel_policy_name(g.o.policy)}, {"cluster", g.cluster}, {"jobs_per_hour", g.o.jobs_per_hour},
          {"jobs", r.jobs}, {"avg_jct_h", r.avg_jct_h}, {"p90_jct_h", r.p90_jct_h}, {"makespan_h", r.makespan_h},
          {"utilization", r.utilization}, {"ftf_mean", r.ftf_mean}, {"ftf_max", r.ftf_max}, {"rounds", r.rounds},
          {"lp_solves", r.lp_solves}, {"wall_seconds", r.wall_seconds}, {"seed", g.o.seed},
          {"extrapolated_jobs", r.extrapolated}, {"cost_dollars", r.cost}, {"slo_jobs", r.slo_jobs},
          {"slo_missed", r.slo_missed}, {"space_sharing", g.o.space_sharing}, {"shared_rounds", r.shared_rounds}};
}

int run_gavel(GavelCli g) {
  LOOM_CHECK(!(g.generate && !g.trace.empty()), "--generate and --trace exclude each other");
  const sched::GavelThroughputs t = sched::GavelThroughputs::load(repo_file(g.throughputs));
  g.o.policy = sched::parse_gavel_policy(g.policy);
  g.o.cluster = parse_cluster(g.cluster, t);
  const auto jobs = g.trace.empty() ? sched::generate_gavel_jobs(t, g.o) : sched::read_gavel_trace(g.trace);
  const sched::GavelResult r = sched::simulate_gavel(t, g.o, jobs);
  std::printf("gavel sim: policy %s, cluster %s, %lld jobs%s\n", g.policy.c_str(), g.cluster.c_str(),
              static_cast<long long>(r.jobs),
              g.trace.empty() ? fmt::format(" at {} jobs/h", g.o.jobs_per_hour).c_str() : (" from " + g.trace).c_str());
  std::printf("avg JCT %.2f h (p90 %.2f h), makespan %.1f h, utilization %.1f%%, finish-time fairness mean %.2f max %.2f\n",
              r.avg_jct_h, r.p90_jct_h, r.makespan_h, 100 * r.utilization, r.ftf_mean, r.ftf_max);
  std::printf("%lld rounds of %.0f s, %lld policy solves, %.2f s wall\n", static_cast<long long>(r.rounds),
              g.o.round_s, static_cast<long long>(r.lp_solves), r.wall_seconds);
  std::printf("accelerator cost $%.0f (prices k80/p100/v100 $%.2f/%.2f/%.2f per hour)", r.cost, g.o.price[0],
              g.o.price[1], g.o.price[2]);
  if (r.slo_jobs) std::printf(", SLOs missed %lld of %lld", static_cast<long long>(r.slo_missed), static_cast<long long>(r.slo_jobs));
  std::printf("\n");
  if (g.o.space_sharing)
    std::printf("space sharing: %lld pair-rounds ran two jobs on one accelerator\n", static_cast<long long>(r.shared_rounds));
  if (r.extrapolated)
    std::printf("note: %lld jobs had no measured throughput at their scale; scaled linearly from 1 accelerator\n",
                static_cast<long long>(r.extrapolated));
  write_json(g.json, gavel_record(g, r));
  return 0;
}

// Average JCT against the job arrival rate, per policy (Gavel Fig. 9 style).
int run_gavel_sweep(GavelCli g) {
  const sched::GavelThroughputs t = sched::GavelThroughputs::load(repo_file(g.throughputs));
  g.o.cluster = parse_cluster(g.cluster, t);
  nlohmann::json records = nlohmann::json::array();
  std::printf("%-18s %8s %10s %10s %11s %8s %8s\n", "policy", "jobs/h", "avg_jct_h", "p90_jct_h", "utilization",
              "ftf_max", "wall_s");
  std::stringstream ps(g.policies);
  std::string policy;
  while (std::getline(ps, policy, ',')) {
    for (int rate10 : parse_int_list(g.rates_x100, "--rates")) {
      GavelCli x = g;
      x.policy = policy;
      x.o.policy = sched::parse_gavel_policy(policy);
      x.o.jobs_per_hour = rate10 / 100.0;
      const auto jobs = sched::generate_gavel_jobs(t, x.o);
      const sched::GavelResult r = sched::simulate_gavel(t, x.o, jobs);
      std::printf("%-18s %8.2f %10.2f %10.2f %10.1f%% %8.2f %8.2f\n", policy.c_str(), x.o.jobs_per_hour, r.avg_jct_h,
                  r.p90_jct_h, 100 * r.utilization, r.ftf_max, r.wall_seconds);
      std::fflush(stdout);
      records.push_back(gavel_record(x, r));
    }
  }
  write_json(g.json, records);
  return 0;
}

}  // namespace

void add_sim(CLI::App& app, Runner& run) {
  auto* sim = app.add_subcommand("sim", "Cluster-scheduling simulators (Omega, Gavel)");
  sim->require_subcommand(1);
  auto s = std::make_shared<SimOptions>();
  auto* one = sim->add_subcommand("omega", "One run of the Omega lightweight simulator");
  add_common(one, *s);
  one->add_option("--arch", s->arch, "mono-single, mono-multi, mesos or omega")->capture_default_str();
  one->add_option("--service-tjob", s->service_tjob, "service decision time per job (s)")->capture_default_str();
  one->add_option("--batch-schedulers", s->o.batch_schedulers, "parallel batch schedulers (omega, mesos)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  one->add_option("--conflict", s->conflict, "omega conflict detection: coarse or fine")->capture_default_str();
  one->add_option("--commit", s->commit, "omega commits: gang or incremental")->capture_default_str();
  one->add_option("--trace", s->trace, "workload CSV (submit_s,type,tasks,duration_s,cpu,mem_gb) instead of generating");
  one->callback([s, &run] { run = [s] { return run_one(*s); }; });

  auto w = std::make_shared<SimOptions>();
  w->o.hours = 6;
  auto* sweep = sim->add_subcommand("omega-sweep", "The Omega paper's experiments as tables (see experiments/omega)");
  add_common(sweep, *w);
  sweep->add_option("--sweep", w->sweep, "decision-time, conflicts or scaling")->capture_default_str();
  sweep->callback([w, &run] { run = [w] { return run_sweep(*w); }; });

  auto g = std::make_shared<GavelCli>();
  auto* gavel = sim->add_subcommand("gavel", "One run of Gavel's round-based heterogeneity-aware scheduler");
  gavel->add_option("--policy", g->policy, "max_min, max_min_agnostic, ftf, makespan, max_throughput, fifo or min_cost")
      ->capture_default_str();
  gavel->add_option("--cluster", g->cluster, "accelerators per type")->capture_default_str();
  gavel->add_option("--trace", g->trace, "Gavel's tab-separated trace instead of generated jobs");
  gavel->add_flag("--generate", g->generate, "generate jobs with Gavel's generator (the default without --trace)");
  gavel->add_option("--jobs", g->o.num_jobs, "generated jobs")->capture_default_str()->check(CLI::Range(1, 10000000));
  gavel->add_option("--rate", g->o.jobs_per_hour, "generated jobs per hour (Poisson)")->capture_default_str();
  gavel->add_option("--round", g->o.round_s, "round length (s)")->capture_default_str();
  gavel->add_flag("--space-sharing", g->o.space_sharing, "max_min: pack pairs of 1-GPU jobs on one GPU (co-location data)");
  gavel->add_option("--slo-fraction", g->o.slo_fraction, "generated jobs with an SLO (1.2x/2x/10x their duration)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  gavel->add_option("--seed", g->o.seed, "workload seed")->capture_default_str();
  gavel->add_option("--measure-from", g->o.measure_from, "first job (arrival order) counted in JCT")->capture_default_str();
  gavel->add_option("--measure-to", g->o.measure_to, "one past the last job counted (-1: all)")->capture_default_str();
  gavel->add_option("--throughputs", g->throughputs, "Gavel's simulation_throughputs.json")->capture_default_str();
  gavel->add_option("--json", g->json, "write the result as JSON");
  gavel->callback([g, &run] { run = [g] { return run_gavel(*g); }; });

  auto gs = std::make_shared<GavelCli>();
  auto* gsweep = sim->add_subcommand("gavel-sweep", "Average JCT vs job arrival rate per policy (experiments/gavel)");
  gsweep->add_option("--policies", gs->policies, "comma-separated policies")->capture_default_str();
  gsweep->add_option("--rates", gs->rates_x100, "arrival rates in hundredths of jobs per hour")->capture_default_str();
  gsweep->add_option("--cluster", gs->cluster, "accelerators per type")->capture_default_str();
  gsweep->add_option("--jobs", gs->o.num_jobs, "jobs per run")->capture_default_str();
  gsweep->add_option("--measure-from", gs->o.measure_from, "first job counted")->capture_default_str();
  gsweep->add_option("--measure-to", gs->o.measure_to, "one past the last job counted (-1: all)")->capture_default_str();
  gsweep->add_option("--seed", gs->o.seed, "workload seed")->capture_default_str();
  gsweep->add_flag("--space-sharing", gs->o.space_sharing, "max_min: also pack pairs of 1-GPU jobs");
  gsweep->add_option("--throughputs", gs->throughputs, "Gavel's simulation_throughputs.json")->capture_default_str();
  gsweep->add_option("--json", gs->json, "write the records as JSON");
  gsweep->callback([gs, &run] { run = [gs] { return run_gavel_sweep(*gs); }; });
}

}  // namespace loom::cli
