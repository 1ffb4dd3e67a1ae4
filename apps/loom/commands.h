// Subcommands of the loom CLI: each file registers its options on a CLI11 app and returns
// the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace loom::cli {

using Runner = std::function<int()>;

void add_info(CLI::App& app, Runner& run);
void add_bench(CLI::App& app, Runner& run);
void add_train(CLI::App& app, Runner& run);  // train and eval
void add_trees(CLI::App& app, Runner& run);  // trees compile|predict|info
void add_prof(CLI::App& app, Runner& run);
void add_sim(CLI::App& app, Runner& run);  // sim omega, omega-sweep

// Benchmarks (bench_gemm.cpp, bench_conv.cpp).
struct BenchCommon {
  std::string threads = "1,2";
  std::string json;
  int repeats = 5;
  bool no_peers = false;
};
// Registers --threads, --json, --no-peers and (when with_repeats) --repeats on a benchmark.
void add_common_bench_options(CLI::App& cmd, BenchCommon& o, bool with_repeats = true);
void add_bench_gemm(CLI::App& bench, Runner& run);
void add_bench_conv(CLI::App& bench, Runner& run);
void add_bench_alloc(CLI::App& bench, Runner& run);
void add_bench_pool(CLI::App& bench, Runner& run);
void add_bench_train(CLI::App& bench, Runner& run);
void add_bench_trees(CLI::App& bench, Runner& run);  // trees and trees-crossover

// Training samples/s of a named model on random data (SGD, momentum 0.9), one figure per
// repetition of `steps` steps; around(r) runs before repetition r and around(-1) at the end.
std::vector<double> train_samples_per_s(const std::string& model, int64_t batch, int steps, int repeats,
                                        const std::function<void(int)>& around);
void add_bench_profile(CLI::App& bench, Runner& run);
void add_bench_comm(CLI::App& bench, Runner& run);  // allreduce ... alltoall, comm-calibrate

// A repository file (a peer script, reference data) given relative to the repository root:
// the path as is when it exists from the working directory, else under the source tree this
// binary was built from, so `loom` works from any directory.
std::string repo_file(const std::string& rel);

// The items of a comma-separated option value ("a,b,c"; "" gives one empty item).
std::vector<std::string> split_list(const std::string& s);
// Parses "1,2,4" into integers; throws loom::Error naming the option on bad input.
std::vector<int> parse_int_list(const std::string& s, const char* option);

}  // namespace loom::cli
