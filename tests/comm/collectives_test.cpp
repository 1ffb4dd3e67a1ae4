// Every collective x algorithm x dtype x op on 1..8 in-process ranks (zero, odd and
// non-divisible sizes) against a naive reference; transport errors name the peer.
#include "loom/comm/collectives.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "loom/base/error.h"
#include "loom/comm/inproc.h"

namespace loom::comm {
namespace {

// Inputs chosen so that every reduction order gives the exact same value in every dtype
// (small integers; products of 1s and 2s).
double input(int rank, size_t i, ReduceOp op) {
  if (op == ReduceOp::prod) return static_cast<double>((rank + i) % 2 + 1);
  return static_cast<double>((rank * 7 + i * 3) % 11) - 3;
}

void store(void* buf, size_t i, DType t, double v) { store_element(buf, i, t, v); }
double load(const void* buf, size_t i, DType t) { return load_element(buf, i, t); }

double reference(int p, size_t i, ReduceOp op, DType t) {
  double acc = input(0, i, op);
  for (int r = 1; r < p; ++r) {
    const double v = input(r, i, op);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg:
        acc += v;
        break;
      case ReduceOp::prod:
        acc *= v;
        break;
      case ReduceOp::min:
        acc = std::min(acc, v);
        break;
      case ReduceOp::max:
        acc = std::max(acc, v);
        break;
    }
  }
  if (op == ReduceOp::avg) {
    acc = (t == DType::i32 || t == DType::i64) ? std::trunc(acc / p) : acc / p;
    if (t == DType::bf16) acc = bf16_to_float(float_to_bf16(static_cast<float>(acc)));
    if (t == DType::f32) acc = static_cast<float>(static_cast<float>(acc));
  }
  return acc;
}

bool close(double got, double want, DType t, ReduceOp op) {
  if (op != ReduceOp::avg || t == DType::i32 || t == DType::i64) return got == want;
  const double tol = t == DType::bf16 ? 1e-2 : t == DType::f32 ? 1e-6 : 1e-12;
  return std::abs(got - want) <= tol * std::max(1.0, std::abs(want));
}

const DType kTypes[] = {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16};
const ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::prod, ReduceOp::min, ReduceOp::max, ReduceOp::avg};
const size_t kCounts[] = {0, 1, 13, 1000};

// All reducing collectives for one world size, each rank checking its own result.
void check_reductions(int p, size_t chunk_bytes) {
  run_inproc(p, [&](Transport& tr) {
    Communicator comm(tr);
    comm.set_chunk_bytes(chunk_bytes);
    const int r = comm.rank();
    for (DType t : kTypes) {
      const size_t es = dtype_size(t);
      for (ReduceOp op : kOps) {
        for (size_t n : kCounts) {
          std::vector<char> buf(n * p * es + 1), out(n * es + 1);
          auto tag = [&](const char* what, Algo a) {
            return fmt::format("{} {} {} {} n={} p={} rank={}", what, algo_name(a), dtype_name(t), reduce_op_name(op),
                               n, p, r);
          };
          for (int local : {0, 1, 2}) {
            for (Algo a : algos_for(Coll::allreduce)) {
              if (a == Algo::hierarchical && (local == 0 || p % local)) continue;
              if (a != Algo::hierarchical && local != 0) continue;
              comm.set_local_size(local);
              for (size_t i = 0; i < n; ++i) store(buf.data(), i, t, input(r, i, op));
              comm.allreduce(buf.data(), n, t, op, a);
              for (size_t i = 0; i < n; ++i) {
                ASSERT_TRUE(close(load(buf.data(), i, t), reference(p, i, op, t), t, op))
                    << tag("allreduce", a) << " i=" << i << " got " << load(buf.data(), i, t);
              }
            }
          }
          for (Algo a : algos_for(Coll::reduce_scatter)) {
            for (size_t i = 0; i < n * p; ++i) store(buf.data(), i, t, input(r, i, op));
            comm.reduce_scatter(buf.data(), out.data(), n, t, op, a);
            for (size_t i = 0; i < n; ++i) {
              ASSERT_TRUE(close(load(out.data(), i, t), reference(p, r * n + i, op, t), t, op))
                  << tag("reduce_scatter", a) << " i=" << i;
            }
          }
          const int root = p - 1;
          for (size_t i = 0; i < n; ++i) store(buf.data(), i, t, input(r, i, op));
          comm.reduce(buf.data(), n, t, op, root);
          if (r == root) {
            for (size_t i = 0; i < n; ++i) {
              ASSERT_TRUE(close(load(buf.data(), i, t), reference(p, i, op, t), t, op))
                  << tag("reduce", Algo::binomial);
            }
          }
        }
      }
    }
  });
}

TEST(CommCollectives, ReductionsMatchTheReferenceOn1To8Ranks) {
  for (int p = 1; p <= 8; ++p) {
    SCOPED_TRACE(p);
    check_reductions(p, 512 << 10);
  }
}

TEST(CommCollectives, ReductionsWithTinyPipelineChunks) {
  // 12-byte pieces: every message is cut, reductions run while later pieces are in flight.
  for (int p : {2, 3}) check_reductions(p, 12);
}

TEST(CommCollectives, DataMovementMatchesTheReference) {
  for (int p = 1; p <= 8; ++p) {
    run_inproc(p, [&](Transport& tr) {
      Communicator comm(tr);
      comm.set_chunk_bytes(40);
      const int r = comm.rank();
      for (DType t : kTypes) {
        const size_t es = dtype_size(t);
        for (size_t n : kCounts) {
          auto v = [](int rank, size_t i) { return static_cast<double>((rank * 31 + i) % 97); };
          std::vector<char> in(n * p * es + 1), out(n * p * es + 1);
          for (Algo a : algos_for(Coll::allgather)) {
            for (size_t i = 0; i < n; ++i) store(in.data(), i, t, v(r, i));
            std::memset(out.data(), 0xff, out.size());
            comm.allgather(in.data(), out.data(), n, t, a);
            for (size_t i = 0; i < n * p; ++i) {
              ASSERT_EQ(load(out.data(), i, t), v(static_cast<int>(i / n), i % n))
                  << "allgather " << algo_name(a) << " p=" << p << " n=" << n;
            }
          }
          for (Algo a : algos_for(Coll::broadcast)) {
            for (int root = 0; root < p; ++root) {
              for (size_t i = 0; i < n; ++i) store(in.data(), i, t, v(r, i));
              comm.broadcast(in.data(), n, t, root, a);
              for (size_t i = 0; i < n; ++i) {
                ASSERT_EQ(load(in.data(), i, t), v(root, i)) << "bcast " << algo_name(a) << " root " << root;
              }
            }
          }
          // alltoall: block j of rank r's input holds values tagged (r, j).
          for (size_t i = 0; i < n * p; ++i) store(in.data(), i, t, v(r, i));
          comm.alltoall(in.data(), out.data(), n, t);
          for (int from = 0; from < p; ++from) {
            for (size_t k = 0; k < n; ++k) {
              ASSERT_EQ(load(out.data(), from * n + k, t), v(from, r * n + k)) << "alltoall p=" << p;
            }
          }
          // In place (input and output are the same buffer).
          for (size_t i = 0; i < n * p; ++i) store(in.data(), i, t, v(r, i));
          comm.alltoall(in.data(), in.data(), n, t);
          for (int from = 0; from < p; ++from) {
            for (size_t k = 0; k < n; ++k) {
              ASSERT_EQ(load(in.data(), from * n + k, t), v(from, r * n + k)) << "in-place alltoall p=" << p;
            }
          }
          comm.barrier();
        }
      }
    });
  }
}

TEST(CommCollectives, AutomaticChoiceAndLargeBuffers) {
  run_inproc(4, [&](Transport& tr) {
    Communicator comm(tr);
    for (size_t n : {size_t{1}, size_t{1} << 20}) {
      std::vector<float> buf(n, static_cast<float>(comm.rank() + 1));
      comm.allreduce(buf.data(), n, DType::f32, ReduceOp::sum);
      for (float x : buf) ASSERT_EQ(x, 10.0f);
    }
    EXPECT_NE(comm.resolve(Coll::allreduce, 1, DType::f32, Algo::automatic), Algo::automatic);
  });
}

TEST(CommTransport, SizeMismatchAndBadPeerNameTheRanks) {
  try {
    run_inproc(2, [&](Transport& tr) {
      char b[16] = {};
      if (tr.rank() == 0) tr.send(1, 5, b, 8);
      if (tr.rank() == 1) tr.recv(0, 5, b, 16);
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 0"), std::string::npos) << e.what();
  }
  InProcWorld w(2);
  char b[4];
  EXPECT_THROW(w.transport(0).isend(0, 1, b, 4), Error);  // to itself
  EXPECT_THROW(w.transport(0).isend(7, 1, b, 4), Error);
}

TEST(CommTransport, AFailedRankFailsItsPeersInsteadOfHanging) {
  try {
    run_inproc(3, [&](Transport& tr) {
      Communicator comm(tr);
      if (tr.rank() == 1) throw Error("rank 1 exploded");
      float x = 1;
      comm.allreduce(&x, 1, DType::f32, ReduceOp::sum, Algo::ring);
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exploded"), std::string::npos) << e.what();
  }
}

TEST(CommTransport, TimeoutNamesThePeer) {
  InProcWorld w(2);
  Transport& t = w.transport(0);
  t.set_timeout(0.2);
  int x = 0;
  try {
    t.recv(1, 9, &x, sizeof x);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("timed out"), std::string::npos) << m;
    EXPECT_NE(m.find("from rank 1"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace loom::comm
