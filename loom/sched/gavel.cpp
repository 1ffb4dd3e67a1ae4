#include "loom/sched/gavel.h"

#include <coin/Clp_C_Interface.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>

#include "loom/base/error.h"
#include "loom/base/file.h"

namespace loom::sched {

const char* gavel_policy_name(GavelPolicy p) {
  switch (p) {
    case GavelPolicy::kMaxMinFairness: return "max_min";
    case GavelPolicy::kMaxMinFairnessAgnostic: return "max_min_agnostic";
    case GavelPolicy::kFinishTimeFairness: return "ftf";
    case GavelPolicy::kMinMakespan: return "makespan";
    case GavelPolicy::kMaxThroughput: return "max_throughput";
    case GavelPolicy::kFifo: return "fifo";
    case GavelPolicy::kMinCost: return "min_cost";
  }
  return "?";
}

GavelPolicy parse_gavel_policy(const std::string& s) {
  for (GavelPolicy p : {GavelPolicy::kMaxMinFairness, GavelPolicy::kMaxMinFairnessAgnostic,
                        GavelPolicy::kFinishTimeFairness, GavelPolicy::kMinMakespan, GavelPolicy::kMaxThroughput,
                        GavelPolicy::kFifo, GavelPolicy::kMinCost})
    if (s == gavel_policy_name(p)) return p;
  LOOM_THROW("unknown Gavel policy '{}' (max_min, max_min_agnostic, ftf, makespan, max_throughput, fifo, min_cost)", s);
}

// ---- throughput data -------------------------------------------------------------------------

GavelThroughputs GavelThroughputs::parse(const std::string& text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    LOOM_THROW("{}: not valid JSON ({})", what, e.what());
  }
  LOOM_CHECK(j.is_object(), "{}: expected an object keyed by accelerator type", what);
  GavelThroughputs t;
  for (const char* gpu : {"k80", "p100", "v100"}) {
    LOOM_CHECK(j.contains(gpu) && j[gpu].is_object(), "{}: no '{}' section", what, gpu);
    t.gpu_types.push_back(gpu);
  }
  for (size_t g = 0; g < t.gpu_types.size(); ++g) {
    for (const auto& [key, val] : j[t.gpu_types[g]].items()) {
      // key: "('ResNet-18 (batch size 16)', 1)"
      const size_t q1 = key.find('\''), q2 = key.rfind('\''), comma = key.rfind(',');
      LOOM_CHECK(q1 != std::string::npos && q2 > q1 && comma > q2, "{}: {}: unrecognised job key '{}'", what,
                 t.gpu_types[g], key);
      const std::string model = key.substr(q1 + 1, q2 - q1 - 1);
      const int scale = std::atoi(key.c_str() + comma + 1);
      LOOM_CHECK(scale >= 1 && scale <= 1024, "{}: {}: bad scale factor in '{}'", what, t.gpu_types[g], key);
      LOOM_CHECK(val.is_object() && val.contains("null") && val["null"].is_number(),
                 "{}: {}['{}'] has no isolated ('null') throughput", what, t.gpu_types[g], key);
      auto& row = t.isolated[{model, scale}];
      row.resize(t.gpu_types.size(), 0.0);
      row[g] = val["null"].get<double>();
      LOOM_CHECK(row[g] >= 0 && std::isfinite(row[g]), "{}: {}['{}']: throughput {}", what, t.gpu_types[g], key, row[g]);
      for (const auto& [other, pair] : val.items()) {
        if (other == "null") continue;
        const size_t o1 = other.find('\''), o2 = other.rfind('\''), oc = other.rfind(',');
        LOOM_CHECK(o1 != std::string::npos && o2 > o1 && oc > o2 && pair.is_array() && pair.size() == 2 &&
                       pair[0].is_number() && pair[1].is_number(),
                   "{}: {}['{}']['{}']: expected [this, other] throughputs", what, t.gpu_types[g], key, other);
        auto& co = t.colocated[{{model, scale}, {other.substr(o1 + 1, o2 - o1 - 1), std::atoi(other.c_str() + oc + 1)}}];
        co.resize(t.gpu_types.size(), {0.0, 0.0});
        co[g] = {pair[0].get<double>(), pair[1].get<double>()};
      }
    }
  }
  LOOM_CHECK(!t.isolated.empty(), "{}: no job types", what);
  return t;
}

GavelThroughputs GavelThroughputs::load(const std::string& path) {
  return parse(read_file(path), path);
}

std::vector<std::string> GavelThroughputs::models() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : isolated)
    if (out.empty() || out.back() != k.first) out.push_back(k.first);
  return out;
}

// ---- LPs through CLP ------------------------------------------------------------------------

namespace {

struct Lp {
  int ncols = 0;
  std::vector<double> obj, lb, ub;
  struct Row {
    std::vector<int> idx;
    std::vector<double> val;
    double lo, hi;
  };
  std::vector<Row> rows;
  bool maximize = true;
};

// Solves with CLP's dual simplex; nullopt when infeasible. Thread-compatible (one model each).
std::optional<std::vector<double>> solve_lp(const Lp& lp) {
  const int nr = static_cast<int>(lp.rows.size());
  std::vector<std::vector<std::pair<int, double>>> cols(lp.ncols);
  std::vector<double> rlo(nr), rhi(nr);
  for (int r = 0; r < nr; ++r) {
    for (size_t k = 0; k < lp.rows[r].idx.size(); ++k) cols[lp.rows[r].idx[k]].push_back({r, lp.rows[r].val[k]});
    rlo[r] = lp.rows[r].lo;
    rhi[r] = lp.rows[r].hi;
  }
  std::vector<CoinBigIndex> start{0};
  std::vector<int> index;
  std::vector<double> value;
  for (const auto& c : cols) {
    for (auto [r, v] : c) index.push_back(r), value.push_back(v);
    start.push_back(static_cast<CoinBigIndex>(index.size()));
  }
  Clp_Simplex* m = Clp_newModel();
  Clp_setLogLevel(m, 0);
  Clp_loadProblem(m, lp.ncols, nr, start.data(), index.data(), value.data(), lp.lb.data(), lp.ub.data(), lp.obj.data(),
                  rlo.data(), rhi.data());
  Clp_setOptimizationDirection(m, lp.maximize ? -1.0 : 1.0);
  Clp_dual(m, 0);
  const int status = Clp_status(m);  // 0 optimal, 1 infeasible, 2 unbounded, ...
  std::optional<std::vector<double>> out;
  if (status == 0) {
    const double* x = Clp_getColSolution(m);
    out = std::vector<double>(x, x + lp.ncols);
  }
  Clp_deleteModel(m);
  LOOM_CHECK(status == 0 || status == 1, "gavel: CLP returned status {} (not optimal, not infeasible)", status);
  return out;
}

// The constraints every policy shares: per-job time share and per-type capacity. Variables
// x[m][j] at m*J + j; `extra` more columns after them.
Lp base_lp(const PolicyInput& in, int extra) {
  const int M = static_cast<int>(in.T.size()), J = static_cast<int>(in.capacity.size());
  Lp lp;
  lp.ncols = M * J + extra;
  lp.obj.assign(lp.ncols, 0.0);
  lp.lb.assign(lp.ncols, 0.0);
  lp.ub.assign(lp.ncols, 1.0);
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < J; ++j)
      if (in.T[m][j] <= 0 || in.scale[m] > in.capacity[j]) lp.ub[m * J + j] = 0;  // cannot run there
  for (int m = 0; m < M; ++m) {
    Lp::Row r{{}, {}, -1e30, 1.0};
    for (int j = 0; j < J; ++j) r.idx.push_back(m * J + j), r.val.push_back(1.0);
    lp.rows.push_back(std::move(r));
  }
  for (int j = 0; j < J; ++j) {
    Lp::Row r{{}, {}, -1e30, static_cast<double>(in.capacity[j])};
    for (int m = 0; m < M; ++m) r.idx.push_back(m * J + j), r.val.push_back(static_cast<double>(in.scale[m]));
    lp.rows.push_back(std::move(r));
  }
  return lp;
}

std::vector<std::vector<double>> unpack(const std::vector<double>& sol, int M, int J) {
  std::vector<std::vector<double>> x(M, std::vector<double>(J));
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < J; ++j) x[m][j] = std::clamp(sol[m * J + j], 0.0, 1.0);
  return x;
}

// Feasibility of finish-time fairness rho: throughput(m, X) >= remaining / (rho * D_m - elapsed)
// for every job; among feasible X, the one with the most normalized throughput.
std::optional<std::vector<double>> ftf_feasible(const PolicyInput& in, double rho) {
  const int M = static_cast<int>(in.T.size()), J = static_cast<int>(in.capacity.size());
  Lp lp = base_lp(in, 0);
  for (int m = 0; m < M; ++m) {
    const double norm = equal_share_throughput(in, static_cast<size_t>(m));
    const double d_equal = in.elapsed[m] + in.remaining[m] / std::max(norm, 1e-12);
    const double left = rho * d_equal - in.elapsed[m];
    if (left <= 0) return std::nullopt;
    Lp::Row r{{}, {}, in.remaining[m] / left, 1e30};
    for (int j = 0; j < J; ++j) {
      r.idx.push_back(m * J + j);
      r.val.push_back(in.T[m][j]);
      lp.obj[m * J + j] = in.T[m][j] / std::max(norm, 1e-12);
    }
    lp.rows.push_back(std::move(r));
  }
  return solve_lp(lp);
}

}  // namespace

double effective_throughput(const PolicyInput& in, const std::vector<std::vector<double>>& x, size_t m) {
  double s = 0;
  for (size_t j = 0; j < in.capacity.size(); ++j) s += in.T[m][j] * x[m][j];
  return s;
}

double equal_share_throughput(const PolicyInput& in, size_t m) {
  // Every job gets the same fraction f of the cluster's time, spread over the types in
  // proportion to their size.
  double total = 0, demand = 0;
  for (int32_t c : in.capacity) total += c;
  for (int32_t s : in.scale) demand += s;
  const double f = demand > 0 ? std::min(1.0, total / demand) : 1.0;
  double thr = 0;
  for (size_t j = 0; j < in.capacity.size(); ++j) thr += in.T[m][j] * f * in.capacity[j] / total;
  return thr;
}

std::vector<std::vector<double>> solve_policy(GavelPolicy p, const PolicyInput& in) {
  const int M = static_cast<int>(in.T.size()), J = static_cast<int>(in.capacity.size());
  LOOM_CHECK(static_cast<int>(in.scale.size()) == M && static_cast<int>(in.weight.size()) == M &&
                 static_cast<int>(in.remaining.size()) == M && static_cast<int>(in.elapsed.size()) == M,
             "gavel: policy inputs disagree on the number of jobs");
  if (M == 0) return {};
  for (const auto& row : in.T) LOOM_CHECK(static_cast<int>(row.size()) == J, "gavel: throughput rows need {} types", J);
  switch (p) {
    case GavelPolicy::kFifo: {
      // Arrival order (the input order); each job on the fastest type with room for it.
      std::vector<std::vector<double>> x(M, std::vector<double>(J, 0.0));
      std::vector<int32_t> free = in.capacity;
      for (int m = 0; m < M; ++m) {
        int best = -1;
        for (int j = 0; j < J; ++j)
          if (in.T[m][j] > 0 && free[j] >= in.scale[m] && (best < 0 || in.T[m][j] > in.T[m][best])) best = j;
        if (best >= 0) {
          x[m][best] = 1;
          free[best] -= in.scale[m];
        }
      }
      return x;
    }
    case GavelPolicy::kMaxMinFairness:
    case GavelPolicy::kMaxMinFairnessAgnostic: {
      // max t  s.t.  t <= throughput(m, X) / (w_m * throughput(m, X_equal)) for every m.
      // Agnostic: every type counts as throughput 1 (a time share), so X ignores speed.
      PolicyInput agn = in;
      if (p == GavelPolicy::kMaxMinFairnessAgnostic)
        for (auto& row : agn.T)
          for (double& v : row) v = v > 0 ? 1.0 : 0.0;
      const PolicyInput& q = p == GavelPolicy::kMaxMinFairnessAgnostic ? agn : in;
      Lp lp = base_lp(q, 1);
      const int t = M * J;
      lp.ub[t] = 1e30;
      lp.obj[t] = 1;
      for (int m = 0; m < M; ++m) {
        const double norm = std::max(equal_share_throughput(q, static_cast<size_t>(m)), 1e-12) * q.weight[m];
        Lp::Row r{{t}, {-1.0}, 0.0, 1e30};
        for (int j = 0; j < J; ++j) r.idx.push_back(m * J + j), r.val.push_back(q.T[m][j] / norm);
        lp.rows.push_back(std::move(r));
      }
      auto sol = solve_lp(lp);
      LOOM_CHECK(sol, "gavel: max-min LP infeasible");
      std::vector<std::vector<double>> x = unpack(*sol, M, J);
      if (p == GavelPolicy::kMaxMinFairnessAgnostic) {
        // Agnostic means no type is preferred: the LP's vertex would put a job on whichever
        // type comes first (k80); spread each job's time share over the types it can run on in
        // proportion to their size instead, as a speed-blind scheduler would.
        for (int m = 0; m < M; ++m) {
          double share = 0, cap = 0;
          for (int j = 0; j < J; ++j) {
            share += x[m][j];
            if (lp.ub[m * J + j] > 0) cap += in.capacity[j];
          }
          for (int j = 0; j < J; ++j) x[m][j] = lp.ub[m * J + j] > 0 && cap > 0 ? share * in.capacity[j] / cap : 0;
        }
      }
      return x;
    }
    case GavelPolicy::kMaxThroughput: {
      Lp lp = base_lp(in, 0);
      for (int m = 0; m < M; ++m) {
        const double norm = std::max(equal_share_throughput(in, static_cast<size_t>(m)), 1e-12);
        for (int j = 0; j < J; ++j) lp.obj[m * J + j] = in.T[m][j] / norm;
      }
      auto sol = solve_lp(lp);
      LOOM_CHECK(sol, "gavel: max-throughput LP infeasible");
      return unpack(*sol, M, J);
    }
    case GavelPolicy::kMinMakespan: {
      // Minimize max_m remaining_m / throughput(m, X): with t = 1 / makespan this is the LP
      // max t  s.t.  throughput(m, X) >= remaining_m * t.
      Lp lp = base_lp(in, 1);
      const int t = M * J;
      lp.ub[t] = 1e30;
      lp.obj[t] = 1;
      for (int m = 0; m < M; ++m) {
        Lp::Row r{{t}, {-in.remaining[m]}, 0.0, 1e30};
        for (int j = 0; j < J; ++j) r.idx.push_back(m * J + j), r.val.push_back(in.T[m][j]);
        lp.rows.push_back(std::move(r));
      }
      auto sol = solve_lp(lp);
      LOOM_CHECK(sol, "gavel: makespan LP infeasible");
      return unpack(*sol, M, J);
    }
    case GavelPolicy::kMinCost: {
      // min sum_m,j price_j scale_m X[m][j] / 3600 (dollars per second of the allocation)
      // s.t. throughput(m, X) + slack_m >= need_m, with need_m = remaining / time to the SLO for
      // jobs with one and the equal-share rate for the others; slack is penalized far above
      // any price, so requirements are met whenever the cluster can meet them.
      const std::vector<double>& price = in.price.empty() ? kDefaultPrices : in.price;
      LOOM_CHECK(static_cast<int>(price.size()) == J, "gavel: {} prices for {} accelerator types", price.size(), J);
      Lp lp = base_lp(in, M);
      lp.maximize = false;
      double max_price = 0;
      for (double pr : price) max_price = std::max(max_price, pr);
      for (int m = 0; m < M; ++m) {
        for (int j = 0; j < J; ++j) lp.obj[m * J + j] = price[j] * in.scale[m] / 3600.0;
        const bool slo = m < static_cast<int>(in.deadline_left.size()) && in.deadline_left[m] > 0;
        double fastest = 0;
        for (int j = 0; j < J; ++j)
          if (lp.ub[m * J + j] > 0) fastest = std::max(fastest, in.T[m][j]);
        double need = slo ? in.remaining[m] / in.deadline_left[m] : equal_share_throughput(in, static_cast<size_t>(m));
        need = std::min(need, fastest);  // never ask for more than the job can do
        const int slack = M * J + m;
        lp.ub[slack] = 1e30;
        // Penalty per unit of missing normalized rate: far above running the job on anything.
        lp.obj[slack] = 1e3 * max_price * in.scale[m] / std::max(need, 1e-12);
        Lp::Row r{{slack}, {1.0}, need, 1e30};
        for (int j = 0; j < J; ++j) r.idx.push_back(m * J + j), r.val.push_back(in.T[m][j]);
        lp.rows.push_back(std::move(r));
      }
      auto sol = solve_lp(lp);
      LOOM_CHECK(sol, "gavel: min-cost LP infeasible");
      return unpack(*sol, M, J);
    }
    case GavelPolicy::kFinishTimeFairness: {
      // min_X max_m rho_m(X), rho_m = (elapsed + remaining / throughput(m, X)) / D_m, with D_m
      // the finish time under an equal share. Not linear in X, but for a fixed rho the
      // constraints are: a bisection over rho on feasibility LPs gives the optimum to 1e-4.
      double hi = 1.0;
      std::optional<std::vector<double>> best = ftf_feasible(in, hi);
      for (int k = 0; !best && k < 40; ++k) best = ftf_feasible(in, hi *= 2);
      LOOM_CHECK(best, "gavel: finish-time fairness infeasible for every rho up to {}", hi);
      double lo = 0;
      while (hi - lo > 1e-4 * hi) {
        const double mid = 0.5 * (lo + hi);
        auto s = ftf_feasible(in, mid);
        if (s) {
          hi = mid;
          best = std::move(s);
        } else {
          lo = mid;
        }
      }
      return unpack(*best, M, J);
    }
  }
  return {};
}

SharedAllocation solve_max_min_space_sharing(const PolicyInput& in) {
  const int M = static_cast<int>(in.T.size()), J = static_cast<int>(in.capacity.size());
  const int P = static_cast<int>(in.pairs.size());
  SharedAllocation out;
  if (M == 0) return out;
  // Columns: x (M*J), then y (P*J), then t.
  Lp lp = base_lp(in, P * J + 1);
  const int y0 = M * J, t = M * J + P * J;
  lp.ub[t] = 1e30;
  lp.obj[t] = 1;
  for (int p = 0; p < P; ++p) {
    const auto& pr = in.pairs[p];
    LOOM_CHECK(pr.a >= 0 && pr.a < M && pr.b >= 0 && pr.b < M && pr.a != pr.b && in.scale[pr.a] == 1 &&
                   in.scale[pr.b] == 1 && static_cast<int>(pr.ta.size()) == J && static_cast<int>(pr.tb.size()) == J,
               "gavel: bad space-sharing pair {}", p);
    for (int j = 0; j < J; ++j) {
      const int c = y0 + p * J + j;
      if (pr.ta[j] <= 0 || pr.tb[j] <= 0 || in.capacity[j] < 1) lp.ub[c] = 0;
      lp.rows[pr.a].idx.push_back(c), lp.rows[pr.a].val.push_back(1.0);  // time of job a
      lp.rows[pr.b].idx.push_back(c), lp.rows[pr.b].val.push_back(1.0);  // time of job b
      lp.rows[M + j].idx.push_back(c), lp.rows[M + j].val.push_back(1.0);  // one accelerator
    }
  }
  std::vector<Lp::Row> fair(M);
  for (int m = 0; m < M; ++m) {
    const double norm = std::max(equal_share_throughput(in, static_cast<size_t>(m)), 1e-12) * in.weight[m];
    fair[m] = {{t}, {-1.0}, 0.0, 1e30};
    for (int j = 0; j < J; ++j) fair[m].idx.push_back(m * J + j), fair[m].val.push_back(in.T[m][j] / norm);
  }
  for (int p = 0; p < P; ++p) {
    const auto& pr = in.pairs[p];
    const double na = std::max(equal_share_throughput(in, pr.a), 1e-12) * in.weight[pr.a];
    const double nb = std::max(equal_share_throughput(in, pr.b), 1e-12) * in.weight[pr.b];
    for (int j = 0; j < J; ++j) {
      fair[pr.a].idx.push_back(y0 + p * J + j), fair[pr.a].val.push_back(pr.ta[j] / na);
      fair[pr.b].idx.push_back(y0 + p * J + j), fair[pr.b].val.push_back(pr.tb[j] / nb);
    }
  }
  for (auto& r : fair) lp.rows.push_back(std::move(r));
  auto sol = solve_lp(lp);
  LOOM_CHECK(sol, "gavel: space-sharing LP infeasible");
  out.x = unpack(*sol, M, J);
  out.y.assign(P, std::vector<double>(J));
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < J; ++j) out.y[p][j] = std::clamp((*sol)[y0 + p * J + j], 0.0, 1.0);
  return out;
}

// ---- workloads ------------------------------------------------------------------------------

std::vector<GavelJob> generate_gavel_jobs(const GavelThroughputs& t, const GavelOptions& o) {
  LOOM_CHECK(o.jobs_per_hour > 0 && o.num_jobs > 0, "gavel: jobs_per_hour {} and num_jobs {} must be positive",
             o.jobs_per_hour, o.num_jobs);
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::exponential_distribution<double> gap(o.jobs_per_hour / 3600.0);
  const std::vector<std::string> models = t.models();
  const size_t fastest = t.gpu_types.size() - 1;  // v100
  std::vector<GavelJob> jobs;
  double now = 0;
  for (int32_t i = 0; i < o.num_jobs; ++i) {
    GavelJob j;
    j.arrival = now;
    now += gap(rng);
    j.model = models[std::uniform_int_distribution<size_t>(0, models.size() - 1)(rng)];
    const double r = u(rng);
    int scale = r < 0.7 ? 1 : r < 0.8 ? 2 : r < 0.95 ? 4 : 8;
    while (scale > 1 && !t.isolated.count({j.model, scale})) scale /= 2;  // not measured at that scale
    j.scale = scale;
    const double duration = u(rng) < 0.8 ? 60 * std::pow(10.0, 1.5 + 1.5 * u(rng)) : 60 * std::pow(10.0, 3 + u(rng));
    j.total_steps = duration * t.isolated.at({j.model, scale})[fastest];
    if (o.slo_fraction > 0 && u(rng) < o.slo_fraction) {
      const double factors[3] = {1.2, 2.0, 10.0};
      j.slo_s = duration * factors[std::uniform_int_distribution<int>(0, 2)(rng)];
    }
    jobs.push_back(j);
  }
  return jobs;
}

std::vector<GavelJob> parse_gavel_trace(const std::string& text, const std::string& what) {
  std::vector<GavelJob> jobs;
  std::stringstream ss(text);
  std::string line;
  int line_no = 0;
  while (std::getline(ss, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, '\t')) f.push_back(x);
    LOOM_CHECK(f.size() == 7, "{}:{}: {} tab-separated fields, expected 7 (job type, command, steps argument, "
               "needs data dir, total steps, arrival time, scale factor)", what, line_no, f.size());
    GavelJob j;
    j.model = f[0];
    char* end = nullptr;
    j.total_steps = std::strtod(f[4].c_str(), &end);
    LOOM_CHECK(*end == '\0' && j.total_steps > 0, "{}:{}: total steps '{}'", what, line_no, f[4]);
    j.arrival = std::strtod(f[5].c_str(), &end);
    LOOM_CHECK(*end == '\0' && j.arrival >= 0, "{}:{}: arrival time '{}'", what, line_no, f[5]);
    j.scale = std::atoi(f[6].c_str());
    LOOM_CHECK(j.scale >= 1 && j.scale <= 1024, "{}:{}: scale factor '{}'", what, line_no, f[6]);
    jobs.push_back(j);
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const GavelJob& a, const GavelJob& b) { return a.arrival < b.arrival; });
  return jobs;
}

std::vector<GavelJob> read_gavel_trace(const std::string& path) {
  return parse_gavel_trace(read_file(path), path);
}

// ---- the round-based mechanism ---------------------------------------------------------------

GavelResult simulate_gavel(const GavelThroughputs& t, const GavelOptions& o, const std::vector<GavelJob>& jobs) {
  const auto wall0 = std::chrono::steady_clock::now();
  const int J = static_cast<int>(t.gpu_types.size());
  LOOM_CHECK(static_cast<int>(o.cluster.size()) == J, "gavel: cluster has {} types, the data {}", o.cluster.size(), J);
  LOOM_CHECK(o.round_s > 0, "gavel: round length {} s", o.round_s);
  const int N = static_cast<int>(jobs.size());
  std::vector<std::vector<double>> T(N);
  int64_t extrapolated = 0;
  for (int i = 0; i < N; ++i) {
    auto it = t.isolated.find({jobs[i].model, jobs[i].scale});
    auto one = t.isolated.find({jobs[i].model, 1});
    if (it != t.isolated.end()) {
      T[i] = it->second;
    } else {
      LOOM_CHECK(o.extrapolate_scale && one != t.isolated.end(), "gavel: no throughput for job type '{}' at scale {}",
                 jobs[i].model, jobs[i].scale);
      T[i] = one->second;
      for (double& v : T[i]) v *= jobs[i].scale;
      ++extrapolated;
    }
    bool runnable = false;
    for (int j = 0; j < J; ++j) runnable |= T[i][j] > 0 && jobs[i].scale <= o.cluster[j];
    LOOM_CHECK(runnable, "gavel: job {} ('{}', scale {}) fits no accelerator type of the cluster", i, jobs[i].model,
               jobs[i].scale);
  }
  std::vector<double> remaining(N), done(N, -1), ideal(N, 0);
  for (int i = 0; i < N; ++i) remaining[i] = jobs[i].total_steps;
  std::vector<int> active;
  std::vector<std::vector<double>> X;              // rows follow `active`
  std::vector<std::vector<double>> received;       // seconds per (active job, type) since X was set
  std::vector<PolicyInput::Pair> shared;           // space sharing: pair options (active positions)
  std::vector<std::vector<double>> Y, received_pair;
  std::vector<bool> measured(N, true);
  for (int i = 0; i < N; ++i) measured[i] = t.isolated.count({jobs[i].model, jobs[i].scale}) > 0;
  double since_alloc = 0;
  int next = 0;
  double now = 0, busy_gpu_s = 0;
  GavelResult r;
  r.jobs = N;
  r.extrapolated = extrapolated;
  bool changed = true;
  int64_t guard = 0;
  while (r.completed < N) {
    LOOM_CHECK(++guard < 50'000'000, "gavel: simulation does not finish");
    while (next < N && jobs[next].arrival <= now) {
      active.push_back(next++);
      changed = true;
    }
    if (active.empty()) {  // idle until the next arrival
      now = std::max(now, jobs[next].arrival);
      continue;
    }
    if (changed) {
      PolicyInput in;
      in.capacity = o.cluster;
      for (int i : active) {
        in.T.push_back(T[i]);
        in.scale.push_back(jobs[i].scale);
        in.weight.push_back(jobs[i].weight);
        in.remaining.push_back(remaining[i]);
        in.elapsed.push_back(now - jobs[i].arrival);
        in.deadline_left.push_back(jobs[i].slo_s > 0 ? std::max(jobs[i].arrival + jobs[i].slo_s - now, 1.0) : 0.0);
      }
      in.price = o.price;
      shared.clear();
      if (o.space_sharing && o.policy == GavelPolicy::kMaxMinFairness) {
        // Every pair of measured 1-accelerator jobs the data has co-location figures for.
        for (size_t a = 0; a < active.size(); ++a)
          for (size_t b = a + 1; b < active.size(); ++b) {
            const GavelJob &ja = jobs[active[a]], &jb = jobs[active[b]];
            if (ja.scale != 1 || jb.scale != 1 || !measured[active[a]] || !measured[active[b]]) continue;
            auto it = t.colocated.find({{ja.model, 1}, {jb.model, 1}});
            if (it == t.colocated.end()) continue;
            PolicyInput::Pair pr{static_cast<int32_t>(a), static_cast<int32_t>(b), {}, {}};
            bool any = false;
            for (int j = 0; j < J; ++j) {
              pr.ta.push_back(it->second[j].first);
              pr.tb.push_back(it->second[j].second);
              any |= it->second[j].first > 0 && it->second[j].second > 0;
            }
            if (any) shared.push_back(std::move(pr));
          }
        in.pairs = shared;
        SharedAllocation sa = solve_max_min_space_sharing(in);
        X = std::move(sa.x);
        Y = std::move(sa.y);
      } else {
        X = solve_policy(o.policy, in);
        Y.clear();
      }
      received_pair.assign(shared.size(), std::vector<double>(J, 0.0));
      ++r.lp_solves;
      for (size_t a = 0; a < active.size(); ++a)  // isolated-share finish time, for the FTF metric
        if (ideal[active[a]] == 0) ideal[active[a]] = jobs[active[a]].total_steps / equal_share_throughput(in, a);
      received.assign(active.size(), std::vector<double>(J, 0.0));
      since_alloc = 0;
      changed = false;
    }
    // Priorities: target share over received share (never-served pairs first), larger jobs
    // first among equals; each job runs on at most one type per round.
    // Candidates are (job, type) and, with space sharing, (pair, type).
    struct Cand {
      double priority;
      int32_t scale;
      int a, j, pair;  // pair >= 0: shared option `pair`; a is then its first job
    };
    auto priority = [&](double target, double received_s) {
      const double got = since_alloc > 0 ? received_s / since_alloc : 0;
      return got > 0 ? target / got : std::numeric_limits<double>::infinity();
    };
    std::vector<Cand> cands;
    for (size_t a = 0; a < active.size(); ++a)
      for (int j = 0; j < J; ++j)
        if (X[a][j] > 1e-6)
          cands.push_back({priority(X[a][j], received[a][j]), jobs[active[a]].scale, static_cast<int>(a), j, -1});
    for (size_t p = 0; p < Y.size(); ++p)
      for (int j = 0; j < J; ++j)
        if (Y[p][j] > 1e-6)
          cands.push_back({priority(Y[p][j], received_pair[p][j]), 1, shared[p].a, j, static_cast<int>(p)});
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& x, const Cand& y) {
      if (x.priority != y.priority) return x.priority > y.priority;
      if (x.scale != y.scale) return x.scale > y.scale;
      return x.a < y.a;
    });
    std::vector<int32_t> free = o.cluster;
    std::vector<int> type_of(active.size(), -1);
    std::vector<double> rate(active.size(), 0), gpu_share(active.size(), 0);
    for (const Cand& c : cands) {
      if (c.pair < 0) {
        if (type_of[c.a] < 0 && free[c.j] >= c.scale) {
          type_of[c.a] = c.j;
          rate[c.a] = T[active[c.a]][c.j];
          gpu_share[c.a] = jobs[active[c.a]].scale;
          free[c.j] -= c.scale;
          received[c.a][c.j] += o.round_s;
        }
        continue;
      }
      const auto& pr = shared[c.pair];
      if (type_of[pr.a] < 0 && type_of[pr.b] < 0 && free[c.j] >= 1) {
        type_of[pr.a] = type_of[pr.b] = c.j;
        rate[pr.a] = pr.ta[c.j];
        rate[pr.b] = pr.tb[c.j];
        gpu_share[pr.a] = gpu_share[pr.b] = 0.5;  // two jobs, one accelerator
        free[c.j] -= 1;
        received_pair[c.pair][c.j] += o.round_s;
        ++r.shared_rounds;
      }
    }
    // Run the round.
    ++r.rounds;
    std::vector<int> still;
    for (size_t a = 0; a < active.size(); ++a) {
      const int i = active[a], j = type_of[a];
      if (j >= 0) {
        const double need = remaining[i] / rate[a];
        const double ran = std::min(o.round_s, need);
        busy_gpu_s += ran * gpu_share[a];
        if (j < static_cast<int>(o.price.size())) r.cost += ran * gpu_share[a] * o.price[j] / 3600;
        if (need <= o.round_s) {
          remaining[i] = 0;
          done[i] = now + need;
          ++r.completed;
          changed = true;
          continue;
        }
        remaining[i] -= rate[a] * o.round_s;
      }
      still.push_back(static_cast<int>(a));
    }
    if (changed) {  // keep the survivors' rows (X is recomputed next round anyway)
      std::vector<int> keep;
      for (int a : still) keep.push_back(active[a]);
      active = keep;
    }
    since_alloc += o.round_s;
    now += o.round_s;
  }
  // Metrics over the measurement window.
  const int from = std::clamp(o.measure_from, 0, N), to = o.measure_to < 0 ? N : std::clamp(o.measure_to, from, N);
  std::vector<double> jct;
  double ftf_sum = 0;
  for (int i = from; i < to; ++i) {
    jct.push_back((done[i] - jobs[i].arrival) / 3600);
    const double f = (done[i] - jobs[i].arrival) / std::max(ideal[i], 1e-9);
    ftf_sum += f;
    r.ftf_max = std::max(r.ftf_max, f);
  }
  for (int i = 0; i < N; ++i)
    if (jobs[i].slo_s > 0) {
      ++r.slo_jobs;
      if (done[i] - jobs[i].arrival > jobs[i].slo_s) ++r.slo_missed;
    }
  if (!jct.empty()) {
    double s = 0;
    for (double v : jct) s += v;
    r.avg_jct_h = s / jct.size();
    r.ftf_mean = ftf_sum / jct.size();
    std::sort(jct.begin(), jct.end());
    r.p90_jct_h = jct[std::min(jct.size() - 1, static_cast<size_t>(0.9 * jct.size()))];
  }
  double last = 0, first = N ? jobs[0].arrival : 0;
  for (double d : done) last = std::max(last, d);
  r.makespan_h = (last - first) / 3600;
  double gpus = 0;
  for (int32_t c : o.cluster) gpus += c;
  r.utilization = last > first ? busy_gpu_s / (gpus * (last - first)) : 0;
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace loom::sched
