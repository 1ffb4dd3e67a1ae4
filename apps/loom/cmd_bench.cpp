// `loom bench <name>`: side-by-side benchmarks against the peer a user would pick instead.
#include "apps/loom/commands.h"

#include <filesystem>
#include "loom/base/error.h"

namespace loom::cli {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t comma = s.find(',', pos);
    out.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) return out;
    pos = comma + 1;
  }
}

std::vector<int> parse_int_list(const std::string& s, const char* option) {
  std::vector<int> out;
  for (const std::string& item : split_list(s)) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    LOOM_CHECK(!item.empty() && end && *end == '\0' && v > 0 && v < (1 << 20),
               "{}: '{}' is not a comma-separated list of positive integers", option, s);
    out.push_back(static_cast<int>(v));
  }
  return out;
}

std::string repo_file(const std::string& rel) {
  if (rel.empty() || rel[0] == '/' || std::filesystem::exists(rel)) return rel;
#ifdef LOOM_SOURCE_DIR
  const std::string in_tree = std::string(LOOM_SOURCE_DIR) + "/" + rel;
  if (std::filesystem::exists(in_tree)) return in_tree;
#endif
  return rel;
}

void add_common_bench_options(CLI::App& cmd, BenchCommon& o, bool with_repeats) {
  cmd.add_option("--threads", o.threads, "comma-separated thread counts")->capture_default_str();
  if (with_repeats)
    cmd.add_option("--repeats", o.repeats, "timed repetitions (min and median reported)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
  cmd.add_option("--json", o.json, "write the records as a JSON array to this file");
  cmd.add_flag("--no-peers", o.no_peers, "measure Loom only");
}

void add_bench(CLI::App& app, Runner& run) {
  auto* bench = app.add_subcommand("bench", "Benchmarks, side by side with peers (OpenBLAS, oneDNN, PyTorch, XGBoost, sklearn, MPI, Gloo)");
  bench->require_subcommand(1);
  add_bench_gemm(*bench, run);
  add_bench_conv(*bench, run);
  add_bench_alloc(*bench, run);
  add_bench_pool(*bench, run);
  add_bench_train(*bench, run);
  add_bench_trees(*bench, run);
  add_bench_profile(*bench, run);
  add_bench_comm(*bench, run);
}

}  // namespace loom::cli
