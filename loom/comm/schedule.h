// Collective algorithms as pure step generators. A Schedule is one rank's program: a list of
// steps, each a set of sends and receives (peer, offset, count in elements of one working
// buffer) plus local copies. Within a step every send reads the buffer as it was when the
// step began; receives either overwrite their range (copy) or are reduced into it. All ranks'
// schedules of one collective have steps that match pairwise (what rank a sends to b in step
// s, b receives from a in step s, in the same order and sizes) -- checked by tests.
//
// Nothing here touches a transport: the runtime (collectives.h) executes schedules, the cost
// model (cost_model.h) prices them, tests simulate them. docs/comm.md lists each algorithm's
// steps and bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom::comm {

enum class Coll : uint8_t { allreduce, reduce_scatter, allgather, broadcast, reduce, alltoall, barrier };
enum class Algo : uint8_t {
  automatic,           // chosen by the cost model
  ring,                // allreduce, reduce_scatter, allgather
  recursive_doubling,  // allreduce, allgather
  rabenseifner,        // allreduce (recursive halving reduce-scatter + doubling allgather)
  halving,             // reduce_scatter (recursive halving)
  tree,                // allreduce (binomial reduce + binomial broadcast)
  hierarchical,        // allreduce (intra-node ring RS, inter-node ring AR, intra-node ring AG)
  bruck,               // allgather
  binomial,            // broadcast, reduce
  chain,               // broadcast (pipelined chain)
  pairwise,            // alltoall
  dissemination,       // barrier
};

const char* coll_name(Coll c);
const char* algo_name(Algo a);
Algo parse_algo(const std::string& s);  // throws on unknown names
Coll parse_coll(const std::string& s);
// The algorithms that implement a collective (without `automatic`).
std::vector<Algo> algos_for(Coll c);

struct Xfer {
  int peer;
  size_t offset;            // elements into the working buffer
  size_t count;             // elements
  bool reduce = false;      // receives only: reduce into the range (else overwrite it)
  bool from_input = false;  // sends only: read the collective's input buffer, not the working one
};
struct Copy {
  size_t src, dst, count;   // elements; ranges do not overlap
  bool from_input = false;  // src is in the collective's input buffer
};
struct Step {
  std::vector<Xfer> sends;
  std::vector<Xfer> recvs;
  // Generators' shorthand: every receive of the step reduces (make_schedule copies it onto
  // each receive's Xfer::reduce, which is what the runtime reads; a step may mix both).
  bool reduce = false;
  // A reduced receive overlaps data sent in the same step (recursive doubling exchanges the
  // same range both ways): the runtime lets the sends finish before reducing. Set by
  // make_schedule; copy receives never overlap sends.
  bool sends_first = false;
  std::vector<Copy> copies;  // done after the step's messages
};
struct Schedule {
  std::vector<Step> steps;
  size_t buffer_count = 0;  // elements of the working buffer
  // Slices of the buffer move through the steps one behind the other, so a step's reduction
  // overlaps its transfers (the cost model charges max(transfer, reduce) per step).
  bool pipelined = false;
  // Elements of the largest step's reduced receives: the scratch a runtime that stages them
  // needs (set by make_schedule).
  size_t scratch_count = 0;
};

struct CollSpec {
  Coll coll = Coll::allreduce;
  Algo algo = Algo::automatic;  // must be concrete for make_schedule
  int ranks = 1;
  int rank = 0;
  // allreduce/broadcast/reduce: elements in the buffer. reduce_scatter/allgather/alltoall:
  // elements per rank (the working buffer holds ranks * count).
  size_t count = 0;
  int root = 0;        // broadcast, reduce
  int local_size = 0;  // hierarchical: ranks per node (ranks % local_size == 0)
  // Pipelining: chain broadcast: elements per chunk; ring allreduce: elements per block of a
  // slice (the buffer is cut into slices of ranks * chunk elements that move through the ring
  // one step apart, so a block reduced in one step is sent on while still in cache). 0: none.
  size_t chunk = 0;
};

// Where the working buffer's data lives for each collective:
//  allreduce, broadcast, reduce: [count]; reduce_scatter: [ranks x count], block r is the
//  result on rank r; allgather: [ranks x count], block r is rank r's input; alltoall:
//  [ranks x count], the output (its sends and its own block's copy read the input buffer,
//  Xfer::from_input); barrier: empty.
Schedule make_schedule(const CollSpec& spec);

// Whether an algorithm can run a collective with these parameters (e.g. hierarchical needs a
// local size dividing the ranks); the reason when not.
bool algo_supported(const CollSpec& spec, std::string* why = nullptr);

// Totals over one rank's schedule, for tests and docs.
struct ScheduleStats {
  int steps = 0;  // steps with at least one message or copy
  size_t messages_sent = 0;
  size_t elements_sent = 0;
  size_t elements_reduced = 0;
};
ScheduleStats schedule_stats(const Schedule& s);

// The block partition of `count` elements into `parts` nearly equal contiguous blocks:
// returns parts+1 offsets.
std::vector<size_t> partition(size_t count, int parts);

}  // namespace loom::comm
