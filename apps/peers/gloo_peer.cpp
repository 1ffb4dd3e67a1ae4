// loom-gloo-peer: the Gloo side of `loom bench allreduce|allgather|reducescatter|bcast|
// alltoall` (Gloo over TCP loopback, what PyTorch's gloo backend runs). It forks --ranks
// processes, rendezvous through Gloo's FileStore, times each size like Loom's bench (min over
// repetitions of the slowest rank's mean) and prints the rows as one JSON line.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/reduce_scatter.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

size_t parse_bytes(const std::string& s) {
  size_t used = 0;
  const double v = std::stod(s, &used);
  const std::string u = s.substr(used);
  const double m = u == "K" || u == "k" ? 1024.0 : u == "M" ? 1048576.0 : u == "G" ? 1073741824.0 : 1.0;
  return static_cast<size_t>(v * m);
}

void max_fn(void* c, const void* a, const void* b, size_t n) {
  auto* o = static_cast<double*>(c);
  auto* x = static_cast<const double*>(a);
  auto* y = static_cast<const double*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = std::max(x[i], y[i]);
}

nlohmann::json run_rank(int rank, int ranks, const std::string& store_dir, const std::string& coll, size_t lo,
                        size_t hi, int factor, int repeats) {
  gloo::transport::tcp::attr attr("127.0.0.1");
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(store_dir);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, ranks);
  ctx->connectFullMesh(store, dev);
  const int p = ranks;
  std::vector<float> in(hi / 4 + p + 1, 1.0f), out(hi / 4 + p + 1, 0.0f);
  uint32_t tag = 0;
  auto call = [&](size_t n) {  // n: elements of the call (per rank for allgather/reducescatter/alltoall)
    if (coll == "allreduce") {
      gloo::AllreduceOptions o(ctx);
      o.setOutput(out.data(), n);
      o.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      o.setTag(tag++);
      gloo::allreduce(o);
    } else if (coll == "allgather") {
      gloo::AllgatherOptions o(ctx);
      o.setInput(in.data(), n);
      o.setOutput(out.data(), n * p);
      o.setTag(tag++);
      gloo::allgather(o);
    } else if (coll == "bcast") {
      gloo::BroadcastOptions o(ctx);
      o.setOutput(out.data(), n);
      o.setRoot(0);
      o.setTag(tag++);
      gloo::broadcast(o);
    } else if (coll == "alltoall") {
      gloo::AlltoallOptions o(ctx);
      o.setInput(in.data(), n * p);
      o.setOutput(out.data(), n * p);
      o.setTag(tag++);
      gloo::alltoall(o);
    } else if (coll == "reducescatter") {
      std::copy(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n * p), out.begin());
      gloo::ReduceScatterHalvingDoubling<float> alg(ctx, {out.data()}, static_cast<int>(n * p),
                                                    std::vector<int>(p, static_cast<int>(n)));
      alg.run();
    } else {
      throw std::runtime_error("unknown collective " + coll);
    }
  };
  auto barrier = [&] {
    gloo::BarrierOptions o(ctx);
    o.setTag(tag++);
    gloo::barrier(o);
  };
  nlohmann::json rows = nlohmann::json::array();
  const bool per_rank = coll == "allgather" || coll == "reducescatter" || coll == "alltoall";
  for (size_t bytes = std::max<size_t>(lo, 4); bytes <= hi; bytes *= factor) {
    const size_t n = per_rank ? bytes / 4 / p : bytes / 4;
    if (n == 0) continue;
    const size_t row_bytes = per_rank ? n * p * 4 : n * 4;
    const int iters = static_cast<int>(std::clamp<double>(1e8 / static_cast<double>(row_bytes), 5, 2000));
    for (int w = 0; w < 3; ++w) call(n);
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      barrier();
      const double t0 = now();
      for (int i = 0; i < iters; ++i) call(n);
      double dt = (now() - t0) / iters * 1e6;
      gloo::AllreduceOptions o(ctx);
      o.setOutput(&dt, 1);
      o.setReduceFunction(&max_fn);
      o.setTag(tag++);
      gloo::allreduce(o);
      times.push_back(dt);
    }
    std::sort(times.begin(), times.end());
    rows.push_back(
        {{"bytes", row_bytes}, {"count", n}, {"time_us", times.front()}, {"time_us_median", times[times.size() / 2]}});
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Gloo peer for loom bench (TCP loopback, f32 sum)");
  std::string coll = "allreduce", min_b = "8", max_b = "256M", dtype = "f32", op = "sum";
  int ranks = 2, factor = 2, repeats = 3;
  app.add_option("--coll", coll);
  app.add_option("--ranks", ranks);
  app.add_option("--min-bytes", min_b);
  app.add_option("--max-bytes", max_b);
  app.add_option("--factor", factor);
  app.add_option("--dtype", dtype);
  app.add_option("--op", op);
  app.add_option("--repeats", repeats);
  CLI11_PARSE(app, argc, argv);
  if (dtype != "f32" || op != "sum") {
    std::fprintf(stderr, "loom-gloo-peer: only f32 sum is measured (got %s %s)\n", dtype.c_str(), op.c_str());
    return 2;
  }
  const std::string dir = "/tmp/loom-gloo-store-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const size_t lo = parse_bytes(min_b), hi = parse_bytes(max_b);
  std::fflush(nullptr);
  std::vector<pid_t> kids;
  for (int r = 1; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        run_rank(r, ranks, dir, coll, lo, hi, factor, repeats);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "gloo rank %d: %s\n", r, e.what());
        _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  int rc = 0;
  nlohmann::json rows;
  try {
    rows = run_rank(0, ranks, dir, coll, lo, hi, factor, repeats);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gloo rank 0: %s\n", e.what());
    rc = 1;
  }
  for (pid_t k : kids) {
    int st = 0;
    waitpid(k, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  std::filesystem::remove_all(dir);
  if (rc == 0) std::printf("%s\n", rows.dump().c_str());
  return rc;
}
