// CPU feature detection, done once. Kernels compiled for several instruction sets pick
// their variant from these flags at run time (as ATen's per-ISA kernels do).
#pragma once

#include <string>

namespace loom {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
};

const CpuFeatures& cpu_features();

// The widest SIMD level available and not disabled by LOOM_ISA=avx2|generic: "avx512",
// "avx2" or "generic". Useful to test every kernel variant on one machine.
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };
Isa active_isa();
void set_isa_override(Isa isa);  // caps active_isa() at isa; for tests and benchmarks
const char* isa_name(Isa isa);
std::string cpu_model_name();

}  // namespace loom
