// `loom bench allreduce|allgather|reducescatter|bcast|alltoall`: nccl-tests-style rows for
// Loom's collectives on a transport, with the cost model's prediction, and the same
// operation through MPI (mpirun, MPI's own collectives) and Gloo (TCP) in the same run.
// `loom bench comm-calibrate` measures the cost model's alpha, beta, gamma.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "loom/base/time.h"
#include "loom/comm/collectives.h"
#include "loom/comm/inproc.h"
#include "loom/comm/launch.h"
#if LOOM_HAVE_MPI
#include "loom/comm/mpi.h"
#endif

namespace loom::cli {
namespace {

using namespace loom::comm;

struct CommBenchOptions {
  std::string coll;
  int ranks = 2;
  std::string transport = "shm";
  std::string algo = "auto";
  std::string min_bytes = "8", max_bytes = "256M";
  int factor = 2;
  std::string dtype = "f32", op = "sum";
  int repeats = 3;
  int rounds = 1;  // sweeps of Loom and each peer, alternated; the best per size is kept
  int local_size = 0;
  std::string chunk = "";  // pipeline chunk / message piece size (empty: the library default)
  std::string json;
  bool no_peers = false, check = false;
  std::string peer;  // internal: "mpi" = MPI's own collectives (run under mpirun)
};

size_t parse_bytes(const std::string& s, const char* opt) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    LOOM_THROW("{}: expected a size like 8, 64K, 256M or 1G, got '{}'", opt, s);
  }
  std::string unit = s.substr(used);
  double mul = 1;
  if (unit == "K" || unit == "k" || unit == "KiB")
    mul = 1024.0;
  else if (unit == "M" || unit == "MiB")
    mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mul = 1024.0 * 1024 * 1024;
  else
    LOOM_CHECK(unit.empty() || unit == "B", "{}: unknown unit '{}' in '{}'", opt, unit, s);
  LOOM_CHECK(v >= 0, "{}: negative size '{}'", opt, s);
  return static_cast<size_t>(v * mul);
}

// nccl-tests' bus-bandwidth factors.
double bus_factor(Coll c, int p) {
  switch (c) {
    case Coll::allreduce:
      return 2.0 * (p - 1) / p;
    case Coll::allgather:
    case Coll::reduce_scatter:
    case Coll::alltoall:
      return static_cast<double>(p - 1) / p;
    default:
      return 1.0;
  }
}

// Elements the collective call takes (per rank for allgather/reducescatter/alltoall, where
// `bytes` is the whole buffer as in nccl-tests).
size_t call_count(Coll c, size_t bytes, size_t es, int p) {
  const size_t n = bytes / es;
  if (c == Coll::allgather || c == Coll::reduce_scatter || c == Coll::alltoall) return n / p;
  return n;
}

struct Row {
  size_t bytes = 0, count = 0;
  std::string algo;
  double us_min = 0, us_median = 0, model_us = 0;
  long wrong = 0;
};

nlohmann::json row_json(const Row& r) {
  return {{"bytes", r.bytes},
          {"count", r.count},
          {"algo", r.algo},
          {"time_us", r.us_min},
          {"time_us_median", r.us_median},
          {"model_us", r.model_us},
          {"wrong", r.wrong}};
}

// One collective call; `native` runs MPI's own implementation instead of Loom's.
struct Caller {
  Coll coll;
  DType t;
  ReduceOp op;
  Algo algo;
  bool native = false;
  void operator()(Communicator& comm, char* in, char* out, size_t n) const {
#if LOOM_HAVE_MPI
    if (native) {
      MpiTransport::native(coll, in, out, n, t, op, 0);
      return;
    }
#endif
    switch (coll) {
      case Coll::allreduce:
        comm.allreduce(out, n, t, op, algo);
        return;
      case Coll::allgather:
        comm.allgather(in, out, n, t, algo);
        return;
      case Coll::reduce_scatter:
        comm.reduce_scatter(in, out, n, t, op, algo);
        return;
      case Coll::broadcast:
        comm.broadcast(out, n, t, 0, algo);
        return;
      case Coll::reduce:
        comm.reduce(out, n, t, op, 0, algo);
        return;
      case Coll::alltoall:
        comm.alltoall(in, out, n, t, algo);
        return;
      case Coll::barrier:
        comm.barrier();
        return;
    }
  }
};

void fill(char* buf, size_t n, DType t, int rank, size_t salt) {
  for (size_t i = 0; i < n; ++i)
    store_element(buf, i, t, static_cast<double>((rank + 1) + static_cast<int>((i + salt) % 3)));
}

// Runs the collective once on known inputs and counts wrong elements on this rank (sum only;
// other ops are checked by the test suite).
long count_wrong(Communicator& comm, const Caller& call, char* in, char* out, size_t n, int p) {
  const int r = comm.rank();
  const DType t = call.t;
  const size_t es = dtype_size(t);
  auto v = [&](int rank, size_t i) { return static_cast<double>((rank + 1) + static_cast<int>(i % 3)); };
  auto sum = [&](size_t i) {
    double s = 0;
    for (int q = 0; q < p; ++q) s += v(q, i);
    return call.op == ReduceOp::avg ? (t == DType::i32 || t == DType::i64 ? std::trunc(s / p) : s / p) : s;
  };
  long wrong = 0;
  auto expect = [&](double got, double want) {
    if (call.op == ReduceOp::sum || call.coll == Coll::allgather || call.coll == Coll::broadcast ||
        call.coll == Coll::alltoall) {
      wrong += got != want;
    }
  };
  switch (call.coll) {
    case Coll::allreduce:
      fill(out, n, t, r, 0);
      call(comm, in, out, n);
      for (size_t i = 0; i < n; ++i) expect(load_element(out, i, t), sum(i));
      break;
    case Coll::reduce_scatter:
      fill(in, n * p, t, r, 0);
      call(comm, in, out, n);
      for (size_t i = 0; i < n; ++i) expect(load_element(out, i, t), sum(r * n + i));
      break;
    case Coll::allgather:
      fill(in, n, t, r, 0);
      call(comm, in, out, n);
      for (size_t i = 0; i < n * p; ++i) expect(load_element(out, i, t), v(static_cast<int>(i / n), i % n));
      break;
    case Coll::broadcast:
      fill(out, n, t, r, 0);
      call(comm, in, out, n);
      for (size_t i = 0; i < n; ++i) expect(load_element(out, i, t), v(0, i));
      break;
    case Coll::alltoall:
      for (int j = 0; j < p; ++j) fill(in + j * n * es, n, t, r, j);
      call(comm, in, out, n);
      for (int from = 0; from < p; ++from) {
        for (size_t k = 0; k < n; ++k) expect(load_element(out, from * n + k, t), v(from, k + r));
      }
      break;
    default:
      break;
  }
  return wrong;
}

// The benchmark body on one rank; rank 0 returns the rows.
std::vector<Row> bench_rank(Transport& tr, const CommBenchOptions& o, bool native) {
  Communicator comm(tr);
  if (o.local_size > 0) comm.set_local_size(o.local_size);
  if (!o.chunk.empty()) comm.set_chunk_bytes(parse_bytes(o.chunk, "--chunk"));
  const Coll coll = parse_coll(o.coll);
  const DType t = parse_dtype(o.dtype);
  const ReduceOp op = parse_reduce_op(o.op);
  const Algo algo = parse_algo(o.algo);
  const int p = comm.size();
  const size_t es = dtype_size(t);
  const size_t lo = std::max(parse_bytes(o.min_bytes, "--min-bytes"), es);
  const size_t hi = parse_bytes(o.max_bytes, "--max-bytes");
  LOOM_CHECK(lo <= hi, "bench {}: --min-bytes {} is larger than --max-bytes {}", o.coll, lo, hi);
  Caller call{coll, t, op, algo, native};
  // Buffers for the largest size, touched once so that no timed call takes page faults.
  const size_t cap = hi + static_cast<size_t>(p) * es;
  std::vector<char> in(coll == Coll::allgather ? cap / p + es : cap), out(cap);
  std::memset(in.data(), 0, in.size());
  std::memset(out.data(), 0, out.size());
  std::vector<Row> rows;
  for (size_t bytes = lo; bytes <= hi; bytes = bytes * o.factor) {
    const size_t n = call_count(coll, bytes, es, p);
    if (n == 0) continue;
    Row row;
    row.bytes =
        (coll == Coll::allgather || coll == Coll::reduce_scatter || coll == Coll::alltoall) ? n * p * es : n * es;
    row.count = n;
    const Algo chosen = native ? Algo::automatic : comm.resolve(coll, n, t, algo);
    row.algo = native ? "mpi" : algo_name(chosen);
    if (!native) {
      CollSpec spec;
      spec.coll = coll, spec.algo = chosen, spec.ranks = p, spec.count = n, spec.local_size = o.local_size;
      if ((coll == Coll::allreduce || coll == Coll::broadcast) && comm.chunk_bytes() > 0) {
        spec.chunk = std::max<size_t>(1, comm.chunk_bytes() / es);
      }
      row.model_us = predict_seconds(spec, t, comm.cost_params()) * 1e6;
    }
    row.wrong = count_wrong(comm, call, in.data(), out.data(), n, p);
    // Iterations: enough to last ~50 ms at 2 GB/s, between 5 and 2000.
    const int iters = static_cast<int>(std::clamp<double>(1e8 / std::max<size_t>(row.bytes, 1), 5, 2000));
    for (int w = 0; w < 3; ++w) call(comm, in.data(), out.data(), n);
    std::vector<double> times;
    for (int rep = 0; rep < o.repeats; ++rep) {
      comm.barrier();
      const double t0 = now_seconds();
      for (int i = 0; i < iters; ++i) call(comm, in.data(), out.data(), n);
      double dt = (now_seconds() - t0) / iters;
      comm.allreduce(&dt, 1, DType::f64, ReduceOp::max);  // the slowest rank's time, as nccl-tests
      times.push_back(dt * 1e6);
    }
    long wrong = row.wrong;
    comm.allreduce(&wrong, 1, DType::i64, ReduceOp::sum);
    row.wrong = wrong;
    std::sort(times.begin(), times.end());
    row.us_min = times.front();
    row.us_median = times[times.size() / 2];
    rows.push_back(row);
    if (bytes == 0 || o.factor < 2) break;
  }
  return rows;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  LOOM_CHECK(n > 0, "cannot find this executable's path");
  return std::string(buf, static_cast<size_t>(n));
}

std::string mpirun_prefix(int ranks) {
  std::string cmd = "mpirun --oversubscribe -np " + std::to_string(ranks);
  if (geteuid() == 0) cmd += " --allow-run-as-root";
  return cmd;
}

std::string size_args(const CommBenchOptions& o) {
  return fmt::format("--min-bytes {} --max-bytes {} --factor {} --dtype {} --op {} --repeats {}", o.min_bytes,
                     o.max_bytes, o.factor, o.dtype, o.op, o.repeats);
}

// Peer rows, keyed by bytes; empty when the peer cannot run (and why in *note).
std::map<size_t, Row> peer_rows(const std::string& cmd, std::string* note) {
  std::string output;
  nlohmann::json j = run_json_command(cmd, &output);
  std::map<size_t, Row> rows;
  if (!j.is_array()) {
    *note = output.substr(0, 400);
    return rows;
  }
  for (const auto& r : j) {
    Row row;
    row.bytes = r.at("bytes").get<size_t>();
    row.count = r.value("count", size_t{0});
    row.us_min = r.at("time_us").get<double>();
    row.us_median = r.value("time_us_median", row.us_min);
    row.wrong = r.value("wrong", 0L);
    rows[row.bytes] = row;
  }
  return rows;
}

// Loom's sweep over a local transport (in-process threads, or one process per rank).
std::vector<Row> measure_local(const CommBenchOptions& o) {
  std::vector<Row> rows;
  if (o.transport == "inproc") {
    run_inproc(o.ranks, [&](Transport& t) {
      auto r = bench_rank(t, o, false);
      if (t.rank() == 0) rows = std::move(r);
    });
    return rows;
  }
  const std::string dir = fmt::format("/tmp/loom-bench-store-{}", getpid());
  std::filesystem::remove_all(dir);
  fork_ranks(o.ranks, [&](int rank) {
    FileStore store(dir);
    auto t = open_transport(o.transport, rank, o.ranks, &store);
    auto r = bench_rank(*t, o, false);
    if (rank == 0) rows = std::move(r);
  });
  std::filesystem::remove_all(dir);
  return rows;
}

// Keeps in *best the faster of it and a later sweep's row of the same size (wrong elements
// add up).
void keep_faster(Row* best, const Row& later) {
  const long wrong = best->wrong + later.wrong;
  if (later.us_min < best->us_min) *best = later;
  best->wrong = wrong;
}

// Merges a new sweep into the rows so far, size by size.
void merge_best(std::vector<Row>* best, const std::vector<Row>& sweep) {
  if (best->empty()) {
    *best = sweep;
    return;
  }
  for (size_t i = 0; i < best->size() && i < sweep.size(); ++i) keep_faster(&(*best)[i], sweep[i]);
}

void merge_best(std::map<size_t, Row>* best, const std::map<size_t, Row>& sweep) {
  for (const auto& [bytes, s] : sweep) {
    auto [it, fresh] = best->emplace(bytes, s);
    if (!fresh) keep_faster(&it->second, s);
  }
}

// One sweep of each peer in the same run: MPI's own collectives at their best (temporary
// buffers stay mapped), and Gloo over TCP.
void run_peers(const CommBenchOptions& o, std::map<size_t, Row>* mpi, std::string* mpi_note,
               std::map<size_t, Row>* gloo, std::string* gloo_note) {
  if (o.no_peers) return;
#if LOOM_HAVE_MPI
  mpi_note->clear();
  merge_best(mpi, peer_rows(fmt::format("{} -x GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc."
                                        "trim_threshold=4294967295 {} bench {} --peer mpi --ranks {} {}",
                                        mpirun_prefix(o.ranks), self_exe(), o.coll, o.ranks, size_args(o)),
                            mpi_note));
#else
  *mpi_note = "not built with MPI";
#endif
  const std::string gloo_bin = (std::filesystem::path(self_exe()).parent_path() / "loom-gloo-peer").string();
  if (std::filesystem::exists(gloo_bin)) {
    gloo_note->clear();
    merge_best(gloo, peer_rows(fmt::format("{} --coll {} --ranks {} {}", gloo_bin, o.coll, o.ranks, size_args(o)),
                               gloo_note));
  } else {
    *gloo_note = "loom-gloo-peer not built (libgloo-dev missing)";
  }
}

int run_comm_bench(CommBenchOptions o) {
  const Coll coll = parse_coll(o.coll);
  parse_dtype(o.dtype), parse_reduce_op(o.op), parse_algo(o.algo);
  LOOM_CHECK(o.ranks >= 1 && o.ranks <= 64, "bench {}: --ranks must be 1..64, got {}", o.coll, o.ranks);
  LOOM_CHECK(o.factor >= 2, "bench {}: --factor must be >= 2", o.coll);
  if (const Algo a = parse_algo(o.algo); a != Algo::automatic) {
    CollSpec s;
    s.coll = coll, s.algo = a, s.ranks = o.ranks, s.local_size = o.local_size;
    std::string why;
    LOOM_CHECK(algo_supported(s, &why), "bench {}: {}", o.coll, why);
  }
  std::vector<Row> rows;
  std::map<size_t, Row> mpi, gloo;
  std::string mpi_note = "skipped", gloo_note = "skipped";
  const bool native = o.peer == "mpi";
  if (native || o.transport == "mpi") {
#if LOOM_HAVE_MPI
    if (!launched_by_mpirun()) {
      // Re-run this command under mpirun, one process per rank.
      std::string cmd =
          fmt::format("{} {} bench {} --transport mpi --ranks {} --algo {} {} --no-peers{}{}{}", mpirun_prefix(o.ranks),
                      self_exe(), o.coll, o.ranks, o.algo, size_args(o), o.chunk.empty() ? "" : " --chunk " + o.chunk,
                      o.check ? " --check" : "", o.json.empty() ? "" : " --json " + o.json);
      return std::system(cmd.c_str()) == 0 ? 0 : 1;
    }
    MpiTransport tr;
    rows = bench_rank(tr, o, native);
    o.ranks = tr.size();
    if (tr.rank() != 0) return 0;
    if (native) {  // the peer's output: one JSON line
      nlohmann::json j = nlohmann::json::array();
      for (const Row& r : rows) j.push_back(row_json(r));
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
#else
    LOOM_THROW("bench {}: this build has no MPI (install libopenmpi-dev and rebuild)", o.coll);
#endif
  } else {
    // The sweeps alternate (Loom, MPI, Gloo, Loom, ...) so that this VM's fast and slow
    // phases, which last seconds to minutes, reach every contender alike.
    for (int round = 0; round < o.rounds; ++round) {
      merge_best(&rows, measure_local(o));
      if (!o.no_peers) run_peers(o, &mpi, &mpi_note, &gloo, &gloo_note);
    }
  }

  std::printf("# %s on %d ranks, transport %s, %s %s, algorithm %s (cost model: %s)\n", o.coll.c_str(), o.ranks,
              o.transport.c_str(), o.dtype.c_str(), o.op.c_str(), o.algo.c_str(),
              load_cost_params(o.transport).source.c_str());
  std::printf("%12s %12s %-18s %10s %9s %9s %6s %10s | %10s %9s %6s | %10s %9s %6s\n", "size(B)", "count", "algo",
              "time(us)", "algbw", "busbw", "#wrong", "model(us)", "mpi(us)", "busbw", "ratio", "gloo(us)", "busbw",
              "ratio");
  nlohmann::json records = nlohmann::json::array();
  const double bf = bus_factor(coll, o.ranks);
  long total_wrong = 0;
  for (const Row& r : rows) {
    const double algbw = r.bytes / (r.us_min * 1e-6) / 1e9, busbw = algbw * bf;
    total_wrong += r.wrong;
    nlohmann::json rec = row_json(r);
    rec["case"] = o.coll;
    rec["transport"] = o.transport;
    rec["ranks"] = o.ranks;
    rec["dtype"] = o.dtype;
    rec["op"] = o.op;
    rec["algbw_gbs"] = algbw;
    rec["busbw_gbs"] = busbw;
    std::string peer_cols;
    for (auto* peer : {&mpi, &gloo}) {
      const char* name = peer == &mpi ? "mpi" : "gloo";
      auto it = peer->find(r.bytes);
      if (it == peer->end()) {
        peer_cols += fmt::format(" | {:>10} {:>9} {:>6}", "-", "-", "-");
        continue;
      }
      const double pb = r.bytes / (it->second.us_min * 1e-6) / 1e9 * bf;
      peer_cols += fmt::format(" | {:10.2f} {:9.3f} {:6.2f}", it->second.us_min, pb, busbw / pb);
      rec["peer_" + std::string(name) + "_us"] = it->second.us_min;
      rec["peer_" + std::string(name) + "_busbw_gbs"] = pb;
      rec["ratio_" + std::string(name)] = busbw / pb;
      rec["peer_" + std::string(name) + "_wrong"] = it->second.wrong;
    }
    std::printf("%12zu %12zu %-18s %10.2f %9.3f %9.3f %6ld %10.2f%s\n", r.bytes, r.count, r.algo.c_str(), r.us_min,
                algbw, busbw, r.wrong, r.model_us, peer_cols.c_str());
    records.push_back(rec);
  }
  if (!mpi_note.empty() && mpi.empty()) std::printf("# mpi peer: %s\n", mpi_note.c_str());
  if (!gloo_note.empty() && gloo.empty()) std::printf("# gloo peer: %s\n", gloo_note.c_str());
  std::printf(
      "# time = min over %d repetitions (x %d alternated rounds) of the slowest rank's mean; busbw with "
      "nccl-tests' factor %.3f; ratio = Loom busbw / peer busbw\n",
      o.repeats, o.rounds, bf);
  write_json_records(o.json, records, o.coll.c_str());
  if (o.check && total_wrong > 0) {
    std::fprintf(stderr, "bench %s: %ld wrong elements\n", o.coll.c_str(), total_wrong);
    return 1;
  }
  return 0;
}

// ---- calibration ----------------------------------------------------------------------------
// The largest exchange comm-calibrate times (its beta table spans 64 KiB .. this).
constexpr size_t kCalibrateMax = size_t{16} << 20;

struct CalibrateOptions {
  std::string transport = "shm";
  std::string out;
};

int run_calibrate(const CalibrateOptions& o) {
  CostParams params;
  auto body = [&](Transport& t) {
    const int r = t.rank();
    // alpha: half an 8-byte round trip.
    char small[8] = {};
    auto pingpong = [&](char* buf, size_t bytes, int iters) {
      for (int i = 0; i < iters; ++i) {
        if (r == 0) {
          t.send(1, 1, buf, bytes);
          t.recv(1, 2, buf, bytes);
        } else {
          t.recv(0, 1, buf, bytes);
          t.send(0, 2, buf, bytes);
        }
      }
    };
    pingpong(small, 8, 100);
    double a = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      const double t0 = now_seconds();
      pingpong(small, 8, 2000);
      a = std::min(a, (now_seconds() - t0) / 4000);
    }
    // beta: both ranks send n bytes to each other at once, as every collective step does (a
    // one-way stream would leave the other direction's CPU and memory bandwidth idle), for
    // n = 64 KiB .. 16 MiB: the table beta_by_size; the scalar beta is the 4 MiB figure.
    std::vector<char> out(kCalibrateMax, 1), in(kCalibrateMax, 0);
    auto exchange = [&](size_t bytes, int iters) {
      for (int i = 0; i < iters; ++i) {
        Request s = t.isend(1 - r, 3, out.data(), bytes);
        Request q = t.irecv(1 - r, 3, in.data(), bytes);
        t.wait(q);
        t.wait(s);
      }
    };
    std::vector<std::pair<double, double>> table;
    for (size_t bytes = size_t{64} << 10; bytes <= kCalibrateMax; bytes *= 4) {
      const int iters = static_cast<int>(std::clamp<size_t>((size_t{32} << 20) / bytes, 3, 100));
      exchange(bytes, 2);
      double b = 1e9;
      for (int rep = 0; rep < 5; ++rep) {
        const double t0 = now_seconds();
        exchange(bytes, iters);
        b = std::min(b, ((now_seconds() - t0) / iters - a) / static_cast<double>(bytes));
      }
      table.emplace_back(static_cast<double>(bytes), std::max(b, 1e-12));
    }
    if (r == 0) {
      params.alpha = a;
      params.beta_by_size = table;
      params.beta = params.beta_at(4 << 20);
    }
  };
  const std::string dir = fmt::format("/tmp/loom-calibrate-{}", getpid());
  if (o.transport == "inproc") {
    run_inproc(2, body);
  } else if (o.transport == "mpi") {
#if LOOM_HAVE_MPI
    if (!launched_by_mpirun()) {
      const std::string cmd = fmt::format("{} {} bench comm-calibrate --transport mpi{}", mpirun_prefix(2), self_exe(),
                                          o.out.empty() ? "" : " --out " + o.out);
      return std::system(cmd.c_str()) == 0 ? 0 : 1;
    }
    MpiTransport t;
    LOOM_CHECK(t.size() == 2, "comm-calibrate: run with 2 MPI ranks, got {}", t.size());
    body(t);
    if (t.rank() != 0) return 0;
#else
    LOOM_THROW("comm-calibrate: this build has no MPI");
#endif
  } else {
    std::filesystem::remove_all(dir);
    fork_ranks(2, [&](int rank) {
      FileStore store(dir);
      auto t = open_transport(o.transport, rank, 2, &store);
      body(*t);
    });
    std::filesystem::remove_all(dir);
  }
  // gamma: reducing 4 MiB of floats into another 4 MiB (cache-resident, as in a pipelined step).
  std::vector<float> x(1 << 20, 1.0f), y(1 << 20, 2.0f);
  double g = 1e9;
  for (int rep = 0; rep < 20; ++rep) {
    const double t0 = now_seconds();
    reduce_into(x.data(), y.data(), x.size(), DType::f32, ReduceOp::sum);
    g = std::min(g, (now_seconds() - t0) / (x.size() * 4.0));
  }
  params.gamma = g;
  params.beta = std::max(params.beta, 1e-12);
  const std::string path = o.out.empty() ? default_cost_params_path(o.transport) : o.out;
  save_cost_params(params, path);
  std::string table;
  for (const auto& [bytes, b] : params.beta_by_size)
    table += fmt::format(" {}K:{:.2f}", static_cast<long>(bytes) >> 10, 1e-9 / b);
  std::printf("%s: alpha %.2f us, beta %.2f GB/s (by size, GB/s:%s), gamma %.2f GB/s -> %s\n", o.transport.c_str(),
              params.alpha * 1e6, 1e-9 / params.beta, table.c_str(), 1e-9 / params.gamma, path.c_str());
  return 0;
}

}  // namespace

void add_bench_comm(CLI::App& bench, Runner& run) {
  for (const char* name : {"allreduce", "allgather", "reducescatter", "bcast", "alltoall"}) {
    auto o = std::make_shared<CommBenchOptions>();
    o->coll = name;
    auto* cmd = bench.add_subcommand(name, fmt::format("{} bandwidth and latency, 8 B .. 256 MiB, nccl-tests style, "
                                                       "against MPI and Gloo",
                                                       name));
    cmd->add_option("--ranks", o->ranks, "number of ranks")->capture_default_str();
    cmd->add_option("--transport", o->transport, "inproc, shm, tcp or mpi")
        ->capture_default_str()
        ->check(CLI::IsMember({"inproc", "shm", "tcp", "mpi"}));
    cmd->add_option("--algo", o->algo, "algorithm (auto: the cost model's choice)")->capture_default_str();
    cmd->add_option("--min-bytes,-b", o->min_bytes, "smallest size (8, 1K, 4M ...)")->capture_default_str();
    cmd->add_option("--max-bytes,-e", o->max_bytes, "largest size")->capture_default_str();
    cmd->add_option("--factor,-f", o->factor, "size multiplier between rows")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "f32, f64, i32, i64, bf16")->capture_default_str();
    cmd->add_option("--op", o->op, "sum, prod, min, max, avg")->capture_default_str();
    cmd->add_option("--repeats", o->repeats, "timed repetitions per size (min and median)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    cmd->add_option("--rounds", o->rounds,
                    "sweeps of Loom and each peer, alternated (best per size kept; one with --transport mpi)")
        ->capture_default_str()
        ->check(CLI::Range(1, 20));
    cmd->add_option("--local-size", o->local_size, "ranks per node, for --algo hierarchical");
    cmd->add_option("--chunk", o->chunk, "pipeline chunk and message piece size (default 512K; 0: none)");
    cmd->add_option("--json", o->json, "write the records as a JSON array to this file");
    cmd->add_flag("--no-peers", o->no_peers, "measure Loom only");
    cmd->add_flag("--check", o->check, "exit non-zero when any element is wrong");
    cmd->add_option("--peer", o->peer, "internal: run MPI's own collectives (under mpirun)")->group("");
    cmd->callback([&run, o] { run = [o] { return run_comm_bench(*o); }; });
  }
  auto c = std::make_shared<CalibrateOptions>();
  auto* cal = bench.add_subcommand("comm-calibrate",
                                   "measure the collective cost model's alpha, beta, gamma "
                                   "for a transport (2 ranks)");
  cal->add_option("--transport", c->transport, "inproc, shm, tcp or mpi")
      ->capture_default_str()
      ->check(CLI::IsMember({"inproc", "shm", "tcp", "mpi"}));
  cal->add_option("--out", c->out, "output file (default ~/.cache/loom/comm-<transport>.json)");
  cal->callback([&run, c] { run = [c] { return run_calibrate(*c); }; });
}

}  // namespace loom::cli
