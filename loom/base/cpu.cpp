#include "loom/base/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace loom {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
    return c;
  }();
  return f;
}

namespace {

Isa detected_isa() {
  const CpuFeatures& f = cpu_features();
  Isa isa = Isa::kGeneric;
  if (f.avx2 && f.fma) isa = Isa::kAvx2;
  if (f.avx512f && f.avx512dq && f.fma) isa = Isa::kAvx512;
  if (const char* env = std::getenv("LOOM_ISA")) {
    if (!std::strcmp(env, "generic")) isa = Isa::kGeneric;
    if (!std::strcmp(env, "avx2") && isa > Isa::kAvx2) isa = Isa::kAvx2;
  }
  return isa;
}

std::atomic<int>& override_ref() {
  static std::atomic<int> v{static_cast<int>(detected_isa())};
  return v;
}

}  // namespace

Isa active_isa() { return static_cast<Isa>(override_ref().load(std::memory_order_relaxed)); }

void set_isa_override(Isa isa) {
  Isa best = detected_isa();
  override_ref().store(static_cast<int>(isa < best ? isa : best));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "unknown";
}

}  // namespace loom
