#include "loom/comm/cost_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "loom/base/error.h"

namespace loom::comm {

CostParams default_cost_params(const std::string& transport) {
  CostParams p;
  // `loom bench comm-calibrate` on the 2-core development VM (docs/comm.md, "Cost model").
  if (transport == "inproc") {
    p.alpha = 1.3e-6, p.beta = 1.0 / 10.2e9, p.gamma = 1.0 / 48e9;
  } else if (transport == "shm") {
    p.alpha = 0.56e-6, p.beta = 1.0 / 14.2e9, p.gamma = 1.0 / 43e9;
  } else if (transport == "tcp") {
    // Medians of six calibrations (2026-11-28): a step's bytes cost more the more are in
    // flight on loopback TCP.
    p.alpha = 35e-6, p.gamma = 1.0 / 44e9;
    p.beta_by_size = {{64 << 10, 1.0 / 2.75e9},
                      {256 << 10, 1.0 / 2.48e9},
                      {1 << 20, 1.0 / 2.25e9},
                      {4 << 20, 1.0 / 1.81e9},
                      {16 << 20, 1.0 / 1.70e9}};
    p.beta = p.beta_at(4 << 20);  // the scalar, as comm-calibrate writes it: the 4 MiB figure
  } else if (transport == "mpi") {
    p.alpha = 0.74e-6, p.beta = 1.0 / 13.9e9, p.gamma = 1.0 / 38e9;
  }
  return p;
}

double CostParams::beta_at(double bytes) const {
  if (beta_by_size.empty()) return beta;
  if (bytes <= beta_by_size.front().first) return beta_by_size.front().second;
  if (bytes >= beta_by_size.back().first) return beta_by_size.back().second;
  size_t i = 1;
  while (beta_by_size[i].first < bytes) ++i;
  const auto& [x0, y0] = beta_by_size[i - 1];
  const auto& [x1, y1] = beta_by_size[i];
  const double f = std::log(bytes / x0) / std::log(x1 / x0);
  return y0 + f * (y1 - y0);
}

std::string default_cost_params_path(const std::string& transport) {
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.cache/loom/comm-{}.json", home ? home : ".", transport);
}

CostParams load_cost_params(const std::string& transport) {
  std::string path;
  if (const char* e = std::getenv("LOOM_COMM_MODEL")) path = e;
  if (path.empty()) path = default_cost_params_path(transport);
  std::ifstream in(path);
  if (!in) return default_cost_params(transport);
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    CostParams p;
    p.alpha = j.at("alpha_s").get<double>();
    p.beta = 1.0 / j.at("beta_bytes_per_s").get<double>();
    p.gamma = 1.0 / j.at("gamma_bytes_per_s").get<double>();
    LOOM_CHECK(p.alpha >= 0 && p.beta > 0 && p.gamma > 0, "values must be positive");
    if (j.contains("beta_by_size")) {
      for (const auto& e : j.at("beta_by_size")) {
        const double bytes = e.at("bytes").get<double>(), rate = e.at("bytes_per_s").get<double>();
        LOOM_CHECK(bytes > 0 && rate > 0, "beta_by_size: bytes and bytes_per_s must be positive");
        LOOM_CHECK(p.beta_by_size.empty() || bytes > p.beta_by_size.back().first,
                   "beta_by_size: sizes must be strictly ascending");
        p.beta_by_size.emplace_back(bytes, 1.0 / rate);
      }
    }
    p.source = path;
    return p;
  } catch (const std::exception& e) {
    LOOM_THROW("comm: bad cost-model file {}: {} (rerun `loom bench comm-calibrate`)", path, e.what());
  }
}

void save_cost_params(const CostParams& p, const std::string& path) {
  std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  nlohmann::json j = {{"alpha_s", p.alpha}, {"beta_bytes_per_s", 1.0 / p.beta}, {"gamma_bytes_per_s", 1.0 / p.gamma}};
  if (!p.beta_by_size.empty()) {
    nlohmann::json t = nlohmann::json::array();
    for (const auto& [bytes, b] : p.beta_by_size) t.push_back({{"bytes", bytes}, {"bytes_per_s", 1.0 / b}});
    j["beta_by_size"] = t;
  }
  std::ofstream out(path);
  LOOM_CHECK(out, "comm: cannot write {}", path);
  out << j.dump(2) << "\n";
}

double predict_seconds(const CollSpec& spec, DType t, const CostParams& p) {
  const double es = static_cast<double>(dtype_size(t));
  std::vector<Schedule> all;
  all.reserve(spec.ranks);
  size_t steps = 0;
  for (int r = 0; r < spec.ranks; ++r) {
    CollSpec c = spec;
    c.rank = r;
    all.push_back(make_schedule(c));
    steps = std::max(steps, all.back().steps.size());
  }
  double total = 0;
  for (size_t s = 0; s < steps; ++s) {
    double worst = 0;
    for (const Schedule& sch : all) {
      if (s >= sch.steps.size()) continue;
      const Step& st = sch.steps[s];
      if (st.sends.empty() && st.recvs.empty()) continue;
      size_t out = 0, in = 0, reduced = 0;
      for (const Xfer& x : st.sends) out += x.count;
      for (const Xfer& x : st.recvs) in += x.count, reduced += x.reduce ? x.count : 0;
      const size_t msgs = std::max(st.sends.size(), st.recvs.size());
      const double bytes = es * static_cast<double>(std::max(out, in));
      const double wire = p.beta_at(bytes) * bytes;
      const double red = p.gamma * es * static_cast<double>(reduced);
      // A pipelined step's chunks stream back to back: their latencies overlap, so the step
      // pays alpha once (charging it per chunk made 2-rank TCP pick recursive doubling at
      // 1-2 MiB, 20-30% slower there than the ring).
      double c = p.alpha * (sch.pipelined ? 1.0 : static_cast<double>(msgs)) +
                 (sch.pipelined ? std::max(wire, red) : wire + red);
      worst = std::max(worst, c);
    }
    total += worst;
  }
  return total;
}

Algo choose_algo(CollSpec spec, DType t, const CostParams& p) {
  Algo best = Algo::automatic;
  double best_t = std::numeric_limits<double>::infinity();
  for (Algo a : algos_for(spec.coll)) {
    spec.algo = a;
    if (!algo_supported(spec)) continue;
    if (a == Algo::chain && spec.chunk == 0) continue;  // a one-chunk chain is never better than binomial
    const double s = predict_seconds(spec, t, p);
    if (s < best_t) best_t = s, best = a;
  }
  LOOM_CHECK(best != Algo::automatic, "comm: no algorithm can run {} on {} ranks", coll_name(spec.coll), spec.ranks);
  return best;
}

}  // namespace loom::comm
