// loom: one binary, one subcommand per file under apps/loom/.
#include <cstdio>

#include "apps/loom/commands.h"
#include "apps/loom/peers.h"
#include "loom/base/error.h"

int main(int argc, char** argv) {
  loom::peers::reexec_for_openblas_peer(argc, argv);
  CLI::App app{"Loom: an ML-systems stack in one C++ codebase (tensors, kernels, autodiff, ...)", "loom"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "loom 0.1");
  loom::cli::Runner run;
  loom::cli::add_info(app, run);
  loom::cli::add_train(app, run);
  loom::cli::add_trees(app, run);
  loom::cli::add_prof(app, run);
  loom::cli::add_sim(app, run);
  loom::cli::add_bench(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "loom: %s (see loom --help)\n", e.what());
    return 2;
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom: %s\n", e.what());
    return 2;
  }
  try {
    return run ? run() : 0;
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return 1;
  }
}
