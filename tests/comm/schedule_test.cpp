// The step generators, checked without any transport: every algorithm's schedules match
// pairwise across ranks, a lockstep simulation of all ranks computes the right answer, and
// steps and bytes on the wire equal the formulas of docs/comm.md.
#include "loom/comm/schedule.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <string>

#include "loom/base/error.h"
#include "loom/comm/cost_model.h"

namespace loom::comm {
namespace {

std::vector<Schedule> all_ranks(CollSpec c) {
  std::vector<Schedule> v;
  for (int r = 0; r < c.ranks; ++r) {
    c.rank = r;
    v.push_back(make_schedule(c));
  }
  return v;
}

std::vector<CollSpec> every_spec(int p, size_t count) {
  std::vector<CollSpec> out;
  for (Coll c : {Coll::allreduce, Coll::reduce_scatter, Coll::allgather, Coll::broadcast, Coll::reduce, Coll::alltoall,
                 Coll::barrier}) {
    for (Algo a : algos_for(c)) {
      CollSpec s;
      s.coll = c, s.algo = a, s.ranks = p, s.count = count;
      if (a == Algo::hierarchical) {
        for (int l = 1; l <= p; ++l) {
          if (p % l) continue;
          s.local_size = l;
          out.push_back(s);
        }
        continue;
      }
      if (c == Coll::allreduce && a == Algo::ring) {
        for (size_t chunk : {size_t{0}, size_t{1}, size_t{3}}) {
          s.chunk = chunk;
          out.push_back(s);
        }
        continue;
      }
      if (c == Coll::broadcast || c == Coll::reduce) {
        for (int root : {0, p - 1, p / 2}) {
          s.root = root;
          for (size_t chunk : {size_t{0}, size_t{3}}) {
            s.chunk = chunk;
            out.push_back(s);
          }
        }
        continue;
      }
      out.push_back(s);
    }
  }
  return out;
}

std::string name(const CollSpec& s) {
  return fmt::format("{}/{} p={} n={} root={} local={} chunk={}", coll_name(s.coll), algo_name(s.algo), s.ranks,
                     s.count, s.root, s.local_size, s.chunk);
}

bool overlaps(size_t a, size_t an, size_t b, size_t bn) { return an && bn && a < b + bn && b < a + an; }

// Executes all ranks' schedules in lockstep on integer-valued doubles (sum is exact).
std::vector<std::vector<double>> simulate(const std::vector<Schedule>& sch, std::vector<std::vector<double>> buf,
                                          const std::vector<std::vector<double>>& input = {}) {
  size_t steps = 0;
  for (const auto& s : sch) steps = std::max(steps, s.steps.size());
  const int p = static_cast<int>(sch.size());
  for (size_t i = 0; i < steps; ++i) {
    // Messages: snapshot of every sender's buffer at step start, in order per (from, to).
    std::map<std::pair<int, int>, std::vector<std::vector<double>>> wire;
    for (int r = 0; r < p; ++r) {
      if (i >= sch[r].steps.size()) continue;
      for (const Xfer& x : sch[r].steps[i].sends) {
        const auto& src = x.from_input ? input.at(r) : buf[r];
        wire[{r, x.peer}].emplace_back(src.begin() + x.offset, src.begin() + x.offset + x.count);
      }
    }
    for (int r = 0; r < p; ++r) {
      if (i >= sch[r].steps.size()) continue;
      const Step& st = sch[r].steps[i];
      std::map<int, size_t> next;
      for (const Xfer& x : st.recvs) {
        auto& q = wire[{x.peer, r}];
        const size_t k = next[x.peer]++;
        EXPECT_LT(k, q.size()) << "rank " << r << " step " << i << " receives a message nobody sent";
        if (k >= q.size()) return buf;
        EXPECT_EQ(q[k].size(), x.count);
        for (size_t j = 0; j < x.count && j < q[k].size(); ++j) {
          if (x.reduce) {
            buf[r][x.offset + j] += q[k][j];
          } else {
            buf[r][x.offset + j] = q[k][j];
          }
        }
      }
      for (const Copy& c : st.copies) {
        for (size_t j = 0; j < c.count; ++j) buf[r][c.dst + j] = (c.from_input ? input.at(r) : buf[r])[c.src + j];
      }
    }
  }
  return buf;
}

TEST(CommSchedule, StepsMatchPairwiseAndNoRaces) {
  for (int p = 1; p <= 9; ++p) {
    for (size_t count : {0, 1, 5, 64, 97}) {
      for (const CollSpec& spec : every_spec(p, count)) {
        SCOPED_TRACE(name(spec));
        const auto sch = all_ranks(spec);
        size_t steps = 0;
        for (const auto& s : sch) steps = std::max(steps, s.steps.size());
        for (size_t i = 0; i < steps; ++i) {
          std::map<std::pair<int, int>, std::vector<size_t>> sent, received;
          for (int r = 0; r < p; ++r) {
            if (i >= sch[r].steps.size()) continue;
            const Step& st = sch[r].steps[i];
            for (const Xfer& x : st.sends) {
              ASSERT_NE(x.peer, r);
              ASSERT_LE(x.offset + x.count, sch[r].buffer_count);
              sent[{r, x.peer}].push_back(x.count);
            }
            for (const Xfer& x : st.recvs) {
              ASSERT_LE(x.offset + x.count, sch[r].buffer_count);
              received[{x.peer, r}].push_back(x.count);
              // A receive never lands on data this rank sends in the same step, nor on another
              // receive.
              // (A reduced receive may, when the step says its sends go first.)
              for (const Xfer& y : st.sends) {
                const bool ov = !y.from_input && overlaps(x.offset, x.count, y.offset, y.count);
                EXPECT_TRUE(!ov || (x.reduce && st.sends_first)) << "step " << i;
              }
              for (const Xfer& y : st.recvs) {
                if (&x != &y) {
                  EXPECT_FALSE(overlaps(x.offset, x.count, y.offset, y.count)) << "step " << i;
                }
              }
            }
          }
          EXPECT_EQ(sent, received) << "step " << i;
        }
      }
    }
  }
}

TEST(CommSchedule, SimulationComputesTheCollective) {
  for (int p = 1; p <= 9; ++p) {
    for (size_t n : {0, 1, 5, 64, 97}) {
      for (const CollSpec& spec : every_spec(p, n)) {
        if (spec.coll == Coll::barrier) continue;
        SCOPED_TRACE(name(spec));
        const auto sch = all_ranks(spec);
        const size_t len = sch[0].buffer_count;
        std::vector<std::vector<double>> in(p, std::vector<double>(len, -1));
        auto val = [](int r, size_t i) { return static_cast<double>((r + 1) * 1000 + i); };
        for (int r = 0; r < p; ++r) {
          for (size_t i = 0; i < len; ++i) in[r][i] = val(r, i);
        }
        if (spec.coll == Coll::allgather) {  // only the own block is defined
          for (int r = 0; r < p; ++r) {
            for (size_t i = 0; i < len; ++i) in[r][i] = i / n == static_cast<size_t>(r) ? val(r, i) : -1;
          }
        }
        if (spec.coll == Coll::alltoall) {  // the output starts unset; the input is separate
          const auto input = in;
          for (auto& v : in) std::fill(v.begin(), v.end(), -1.0);
          const auto out = simulate(sch, in, input);
          for (int r = 0; r < p; ++r) {
            for (size_t i = 0; i < len; ++i) {
              ASSERT_EQ(out[r][i], val(static_cast<int>(i / n), r * n + i % n)) << "rank " << r << " element " << i;
            }
          }
          continue;
        }
        const auto out = simulate(sch, in);
        for (int r = 0; r < p; ++r) {
          for (size_t i = 0; i < len; ++i) {
            double want = 0;
            double got = out[r][i];
            switch (spec.coll) {
              case Coll::allreduce:
                for (int q = 0; q < p; ++q) want += val(q, i);
                break;
              case Coll::reduce:
                if (r != spec.root) continue;
                for (int q = 0; q < p; ++q) want += val(q, i);
                break;
              case Coll::reduce_scatter:
                if (i / n != static_cast<size_t>(r)) continue;
                for (int q = 0; q < p; ++q) want += val(q, i);
                break;
              case Coll::allgather:
                want = val(static_cast<int>(i / n), i);
                break;
              case Coll::broadcast:
                want = val(spec.root, i);
                break;
              case Coll::alltoall:
                break;  // checked above
              case Coll::barrier:
                break;
            }
            ASSERT_EQ(got, want) << "rank " << r << " element " << i;
          }
        }
      }
    }
  }
}

ScheduleStats stats(Coll c, Algo a, int p, size_t n, int rank = 0) {
  CollSpec s;
  s.coll = c, s.algo = a, s.ranks = p, s.rank = rank, s.count = n;
  return schedule_stats(make_schedule(s));
}

// The formulas of docs/comm.md (n elements; p ranks; per rank).
TEST(CommSchedule, StepsAndBytesMatchTheDocs) {
  const size_t n = 8 * 9 * 5 * 7 * 64;  // divisible by every p below
  for (int p : {2, 3, 4, 5, 6, 7, 8}) {
    SCOPED_TRACE(p);
    int lg = 0;
    while ((1 << lg) < p) ++lg;
    const bool pow2 = (1 << lg) == p;
    auto ring = stats(Coll::allreduce, Algo::ring, p, n);
    EXPECT_EQ(ring.steps, 2 * (p - 1));
    EXPECT_EQ(ring.elements_sent, 2 * (p - 1) * n / p);
    EXPECT_EQ(ring.elements_reduced, (p - 1) * n / p);
    // Pipelined ring: C slices take C + 2(p-1) - 1 steps and send the same bytes.
    CollSpec pr;
    pr.coll = Coll::allreduce, pr.algo = Algo::ring, pr.ranks = p, pr.count = n, pr.chunk = n / p / 8;
    const auto prs = schedule_stats(make_schedule(pr));
    EXPECT_EQ(prs.steps, 8 + 2 * (p - 1) - 1);
    EXPECT_EQ(prs.elements_sent, ring.elements_sent);
    EXPECT_EQ(prs.elements_reduced, ring.elements_reduced);
    auto tree = stats(Coll::allreduce, Algo::tree, p, n, p - 1);
    EXPECT_LE(tree.steps, 2 * lg);
    if (pow2) {
      auto rd = stats(Coll::allreduce, Algo::recursive_doubling, p, n);
      EXPECT_EQ(rd.steps, lg);
      EXPECT_EQ(rd.elements_sent, lg * n);
      auto rab = stats(Coll::allreduce, Algo::rabenseifner, p, n);
      EXPECT_EQ(rab.steps, 2 * lg);
      EXPECT_EQ(rab.elements_sent, 2 * (p - 1) * n / p);
      auto half = stats(Coll::reduce_scatter, Algo::halving, p, n / p);
      EXPECT_EQ(half.steps, lg);
      EXPECT_EQ(half.elements_sent, (p - 1) * n / p);
    } else {
      // Non-powers of two: one extra step at each end for the folded ranks.
      const int p2 = 1 << (lg - 1);
      auto rab = stats(Coll::allreduce, Algo::rabenseifner, p, n, 1);  // an active, folded-in rank
      EXPECT_EQ(rab.steps, 2 * (lg - 1) + 2);
      auto rd = stats(Coll::allreduce, Algo::recursive_doubling, p, n, p - 1);  // not folded
      EXPECT_EQ(rd.steps, lg - 1);
      EXPECT_EQ(rd.elements_sent, (lg - 1) * n);
      (void)p2;
    }
    auto rrs = stats(Coll::reduce_scatter, Algo::ring, p, n / p);
    EXPECT_EQ(rrs.steps, p - 1);
    EXPECT_EQ(rrs.elements_sent, (p - 1) * n / p);
    auto rag = stats(Coll::allgather, Algo::ring, p, n / p);
    EXPECT_EQ(rag.steps, p - 1);
    EXPECT_EQ(rag.elements_sent, (p - 1) * n / p);
    auto bruck = stats(Coll::allgather, Algo::bruck, p, n / p);
    EXPECT_EQ(bruck.steps, lg);
    EXPECT_EQ(bruck.elements_sent, (p - 1) * n / p);
    auto a2a = stats(Coll::alltoall, Algo::pairwise, p, n / p);
    EXPECT_EQ(a2a.steps, p - 1);
    EXPECT_EQ(a2a.elements_sent, (p - 1) * n / p);
    auto bar = stats(Coll::barrier, Algo::dissemination, p, 0);
    EXPECT_EQ(bar.steps, lg);
    EXPECT_EQ(bar.messages_sent, static_cast<size_t>(lg));
    // Pipelined chain: C chunks take C + p - 2 steps; the root sends every element once.
    CollSpec ch;
    ch.coll = Coll::broadcast, ch.algo = Algo::chain, ch.ranks = p, ch.count = n, ch.chunk = n / 16;
    EXPECT_EQ(make_schedule(ch).steps.size(), static_cast<size_t>(16 + p - 2));
    EXPECT_EQ(schedule_stats(make_schedule(ch)).elements_sent, n);
  }
}

TEST(CommSchedule, CostModelPrefersLatencyOptimalForSmallAndBandwidthOptimalForLarge) {
  CostParams cp;
  cp.alpha = 5e-6, cp.beta = 1 / 5e9, cp.gamma = 1 / 10e9;
  CollSpec s;
  s.coll = Coll::allreduce, s.ranks = 8;
  s.count = 2;
  const Algo small = choose_algo(s, DType::f32, cp);
  EXPECT_TRUE(small == Algo::recursive_doubling || small == Algo::tree) << algo_name(small);
  s.count = 64 << 20;
  const Algo big = choose_algo(s, DType::f32, cp);
  EXPECT_TRUE(big == Algo::ring || big == Algo::rabenseifner) << algo_name(big);
  // Prediction of ring = 2(p-1) (alpha + beta n/p) + (p-1) gamma n/p.
  s.algo = Algo::ring;
  const double nb = 4.0 * s.count;
  const double want = 14 * (cp.alpha + cp.beta * nb / 8) + 7 * cp.gamma * nb / 8;
  EXPECT_NEAR(predict_seconds(s, DType::f32, cp), want, want * 1e-9);
  // A pipelined step's chunks stream back to back: alpha once per step (docs/comm.md), so
  // with free bandwidth the prediction is alpha times the step count.
  CostParams lat;
  lat.alpha = 1e-6, lat.beta = 1e-30, lat.gamma = 1e-30;
  s.ranks = 2, s.count = 1 << 20, s.chunk = 1 << 16;
  const Schedule piped = make_schedule(s);
  ASSERT_TRUE(piped.pipelined);
  EXPECT_NEAR(predict_seconds(s, DType::f32, lat), 1e-6 * static_cast<double>(piped.steps.size()), 1e-12);
}

TEST(CommSchedule, BetaBySizeIsInterpolatedInLogSizeAndPricesEachStep) {
  CostParams cp;
  cp.alpha = 0, cp.gamma = 1e-30;
  cp.beta_by_size = {{1 << 20, 1 / 4e9}, {4 << 20, 1 / 2e9}};
  EXPECT_DOUBLE_EQ(cp.beta_at(1 << 10), 1 / 4e9);  // clamped below
  EXPECT_DOUBLE_EQ(cp.beta_at(64 << 20), 1 / 2e9);  // and above
  EXPECT_NEAR(cp.beta_at(2 << 20), 0.5 * (1 / 4e9 + 1 / 2e9), 1e-21);  // halfway in log size
  // Two ranks, 4 MiB: recursive doubling is one 4 MiB exchange at 2 GB/s (2.1 ms),
  // Rabenseifner two 2 MiB exchanges at the interpolated rate (1.57 ms): the table makes the
  // bigger step dearer per byte, as on loopback TCP.
  CollSpec s;
  s.coll = Coll::allreduce, s.ranks = 2, s.count = 1 << 20;
  s.algo = Algo::recursive_doubling;
  EXPECT_NEAR(predict_seconds(s, DType::f32, cp), (4 << 20) / 2e9, 1e-9);
  s.algo = Algo::rabenseifner;
  EXPECT_NEAR(predict_seconds(s, DType::f32, cp), 2 * (2 << 20) * cp.beta_at(2 << 20), 1e-9);
  EXPECT_NE(choose_algo(s, DType::f32, cp), Algo::recursive_doubling);
}

TEST(CommSchedule, CostFileRoundTripsTheBetaTableAndRejectsABadOne) {
  const std::string path = ::testing::TempDir() + "loom_cost_model_test.json";
  CostParams cp;
  cp.alpha = 3e-5, cp.beta = 1 / 2e9, cp.gamma = 1 / 40e9;
  cp.beta_by_size = {{65536, 1 / 3e9}, {1 << 20, 1 / 2e9}};
  save_cost_params(cp, path);
  setenv("LOOM_COMM_MODEL", path.c_str(), 1);
  const CostParams back = load_cost_params("tcp");
  ASSERT_EQ(back.beta_by_size.size(), 2u);
  EXPECT_DOUBLE_EQ(back.beta_by_size[1].first, 1 << 20);
  EXPECT_NEAR(back.beta_by_size[0].second, 1 / 3e9, 1e-20);
  EXPECT_EQ(back.source, path);
  {
    std::ofstream f(path);
    f << R"({"alpha_s": 1e-5, "beta_bytes_per_s": 1e9, "gamma_bytes_per_s": 1e10,
            "beta_by_size": [{"bytes": 4096, "bytes_per_s": 1e9}, {"bytes": 1024, "bytes_per_s": 1e9}]})";
  }
  try {
    load_cost_params("tcp");
    ADD_FAILURE() << "descending sizes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ascending"), std::string::npos) << e.what();
  }
  unsetenv("LOOM_COMM_MODEL");
  std::remove(path.c_str());
}

TEST(CommSchedule, BadSpecsAreClearErrors) {
  CollSpec s;
  s.coll = Coll::allreduce, s.algo = Algo::bruck, s.ranks = 4;
  EXPECT_THROW(make_schedule(s), Error);
  s.algo = Algo::hierarchical, s.local_size = 3;
  try {
    make_schedule(s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("local size"), std::string::npos) << e.what();
  }
  s.algo = Algo::ring, s.rank = 4;
  EXPECT_THROW(make_schedule(s), Error);
  EXPECT_THROW(parse_algo("ringg"), Error);
  EXPECT_THROW(parse_dtype("f16"), Error);
}

}  // namespace
}  // namespace loom::comm
