// The collective runtime: executes the schedules of schedule.h over any Transport.
//
//   loom::comm::Communicator comm(transport);
//   comm.allreduce(buf, n, DType::f32, ReduceOp::sum);          // algorithm from the cost model
//   comm.allreduce(buf, n, DType::f32, ReduceOp::sum, Algo::ring);
//
// Every rank must call the same collectives in the same order with the same counts (as in
// MPI). Received pieces are reduced as they arrive while later pieces are still in flight
// (messages are cut into chunk_bytes pieces), so reduction overlaps communication.
// Scratch memory is kept between calls: a steady-state training step allocates nothing.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "loom/comm/cost_model.h"
#include "loom/comm/schedule.h"
#include "loom/comm/transport.h"
#include "loom/comm/types.h"

namespace loom::comm {

class Communicator {
 public:
  explicit Communicator(Transport& t);
  int rank() const { return t_.rank(); }
  int size() const { return t_.size(); }
  Transport& transport() { return t_; }

  // In place on count elements.
  void allreduce(void* buf, size_t count, DType t, ReduceOp op, Algo algo = Algo::automatic);
  // in: size() * count elements; out: count elements (the reduced block of this rank).
  void reduce_scatter(const void* in, void* out, size_t count, DType t, ReduceOp op, Algo algo = Algo::automatic);
  // in: count elements; out: size() * count elements, rank order.
  void allgather(const void* in, void* out, size_t count, DType t, Algo algo = Algo::automatic);
  void broadcast(void* buf, size_t count, DType t, int root, Algo algo = Algo::automatic);
  // In place; the result is valid on root only.
  void reduce(void* buf, size_t count, DType t, ReduceOp op, int root, Algo algo = Algo::automatic);
  // in, out: size() * count elements; block j of `in` goes to rank j, block i of `out` came
  // from rank i.
  void alltoall(const void* in, void* out, size_t count, DType t, Algo algo = Algo::automatic);
  void barrier();

  // The algorithm `automatic` resolves to for these parameters.
  Algo resolve(Coll c, size_t count, DType t, Algo algo, int root = 0);

  // Ranks per node, for the hierarchical allreduce (0: unknown, hierarchical unavailable).
  void set_local_size(int n) { local_size_ = n; }
  // Messages are cut into pieces of at most this many bytes (default 512 KiB; 0: never).
  void set_chunk_bytes(size_t b) {
    chunk_bytes_ = b;
    choices_.clear();
  }
  size_t chunk_bytes() const { return chunk_bytes_; }
  const CostParams& cost_params() const { return params_; }
  void set_cost_params(const CostParams& p);

 private:
  CollSpec spec(Coll c, size_t count, DType t, Algo algo, int root) const;
  const Schedule& schedule_for(const CollSpec& s);
  // buf: the working buffer; in: the collective's input (for Xfer::from_input sends).
  void execute(const Schedule& s, char* buf, DType t, ReduceOp op, const char* in = nullptr);
  char* work(size_t bytes);

  Transport& t_;
  int local_size_ = 0;
  size_t chunk_bytes_ = 512 << 10;
  CostParams params_;
  uint32_t seq_ = 0;
  std::vector<char> scratch_, work_;
  struct Piece {
    Request req;
    size_t offset, count, scratch;
    bool reduce_after;  // received into scratch: reduce once it is complete
  };
  std::vector<Piece> pieces_;
  static constexpr size_t kSmallStepBytes = 4096;
  std::vector<Request> send_reqs_;
  // Working-buffer element range each of send_reqs_ reads (empty for input-buffer sends).
  std::vector<std::pair<size_t, size_t>> send_ranges_;
  using Key = std::tuple<int, int, size_t, int, int, size_t>;  // coll, algo, count, root, dtype size, chunk
  std::map<Key, Schedule> schedules_;
  std::map<std::tuple<int, size_t, int, int>, Algo> choices_;
};

}  // namespace loom::comm
