// Starting a process group on one machine, and opening a transport by name.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "loom/comm/store.h"
#include "loom/comm/transport.h"

namespace loom::comm {

// Runs fn(rank) in `ranks` processes: this one is rank 0, the others are forked children.
// Returns when every rank has finished; throws loom::Error naming the first rank that failed
// (a child that threw, exited non-zero or was killed). fn must not rely on threads started
// before the call (fork keeps only the calling thread).
void fork_ranks(int ranks, const std::function<void(int rank)>& fn);

// "inproc" is not available here (see inproc.h); "shm", "tcp" and (when built with MPI) "mpi".
// mpi ignores rank, size and store: they come from mpirun.
std::unique_ptr<Transport> open_transport(const std::string& kind, int rank, int size, Store* store,
                                          const std::string& host = "127.0.0.1");

}  // namespace loom::comm
