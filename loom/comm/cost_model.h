// The alpha-beta-gamma cost model (Hockney's alpha-beta plus a reduction term): a message of
// n bytes costs alpha + beta*n, reducing n bytes costs gamma*n. A schedule's predicted time
// is the sum over its steps of the slowest rank's cost in that step, computed from the step
// generators of all ranks -- so every algorithm (and every rank count) is priced by the same
// code that runs it. `loom bench comm-calibrate` measures alpha, beta, gamma per transport.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "loom/comm/schedule.h"
#include "loom/comm/types.h"

namespace loom::comm {

struct CostParams {
  double alpha = 2e-6;       // seconds per message
  double beta = 1.0 / 4e9;   // seconds per byte on the wire
  double gamma = 1.0 / 8e9;  // seconds per byte reduced
  // Optional beta by the bytes a step exchanges, (bytes, seconds per byte) with bytes
  // ascending: on TCP loopback a byte costs more when more are in flight (2 MiB exchanged at
  // ~2.9 GB/s, 16 MiB at ~1.8), which a single beta cannot express. Empty: `beta` throughout.
  std::vector<std::pair<double, double>> beta_by_size;
  std::string source = "default";  // "default" or the calibration file read

  // Seconds per byte for a step exchanging `bytes`: beta_by_size interpolated linearly in
  // log(bytes) and clamped at its ends, else beta.
  double beta_at(double bytes) const;
};

// Built-in figures for this machine class (measured with `loom bench comm-calibrate`; see
// docs/comm.md); a calibration file overrides them.
CostParams default_cost_params(const std::string& transport);
// Reads $LOOM_COMM_MODEL, else ~/.cache/loom/comm-<transport>.json, else the defaults.
CostParams load_cost_params(const std::string& transport);
void save_cost_params(const CostParams& p, const std::string& path);
std::string default_cost_params_path(const std::string& transport);

// Predicted seconds for a collective (all ranks' schedules are generated).
double predict_seconds(const CollSpec& spec, DType t, const CostParams& p);
// The algorithm with the smallest predicted time for this collective (spec.algo ignored).
Algo choose_algo(CollSpec spec, DType t, const CostParams& p);

}  // namespace loom::comm
