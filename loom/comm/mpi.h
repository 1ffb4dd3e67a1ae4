// MPI transport (OpenMPI): the way to run across machines with mpirun. Point-to-point
// messages map onto MPI_Isend/MPI_Irecv on MPI_COMM_WORLD; progress is MPI's own, polled with
// MPI_Testsome by the waiting thread. Built only when MPI is found (LOOM_HAVE_MPI).
#pragma once

#include <mutex>
#include <vector>

#include "loom/comm/schedule.h"
#include "loom/comm/transport.h"
#include "loom/comm/types.h"

namespace loom::comm {

class MpiTransport final : public Transport {
 public:
  MpiTransport();  // initializes MPI if nobody has (and finalizes it in the destructor)
  ~MpiTransport() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "mpi"; }
  Request isend(int peer, uint32_t tag, const void* data, size_t bytes) override;
  Request irecv(int peer, uint32_t tag, void* data, size_t bytes) override;

  // The same collective through MPI's own implementation (the benchmark peer). Buffers as in
  // Communicator.
  static void native(Coll c, const void* in, void* out, size_t count, DType t, ReduceOp op, int root);

 protected:
  bool progress() override;
  bool can_sleep() const override { return false; }

 private:
  int rank_ = 0, size_ = 1;
  int tag_ub_ = 32767;
  bool finalize_ = false;
  std::mutex mu_;
  std::vector<void*> mpi_reqs_;  // MPI_Request values (an opaque pointer in OpenMPI)
  std::vector<Request> reqs_;
};

// Whether this process was started by mpirun (OMPI_COMM_WORLD_SIZE or PMI_SIZE set).
bool launched_by_mpirun();

}  // namespace loom::comm
