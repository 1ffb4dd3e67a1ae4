// `loom info`: what this machine and build offer (ISA, GEMM kernel, threads).
#include <cstdio>

#include "apps/loom/commands.h"
#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cli {

void add_info(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("info", "Print the CPU, the chosen kernels and the thread count");
  cmd->callback([&run] {
    run = [] {
      std::printf("cpu:          %s\n", cpu_model_name().c_str());
      std::printf("isa:          %s\n", isa_name(active_isa()));
      std::printf("sgemm kernel: %s (MC %lld, KC %lld, NC %lld)\n", cpu::sgemm_kernel_name(),
                  static_cast<long long>(cpu::active_sgemm_kernel().mc),
                  static_cast<long long>(cpu::active_sgemm_kernel().kc),
                  static_cast<long long>(cpu::active_sgemm_kernel().nc));
      std::printf("threads:      %d\n", num_threads());
      return 0;
    };
  });
}

}  // namespace loom::cli
