#include "loom/comm/mpi.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "loom/base/error.h"

namespace loom::comm {

static_assert(sizeof(MPI_Request) <= sizeof(void*), "MPI_Request must fit a pointer");

namespace {
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  LOOM_THROW("comm mpi: {} failed: {}", what, std::string(msg, len));
}
MPI_Request to_mpi(void* p) {
  MPI_Request r;
  std::memcpy(&r, &p, sizeof r);
  return r;
}
void* from_mpi(MPI_Request r) {
  void* p = nullptr;
  std::memcpy(&p, &r, sizeof r);
  return p;
}
MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::bf16:
      break;
  }
  LOOM_THROW("comm mpi: MPI has no {} type", dtype_name(t));
}
MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return MPI_SUM;
    case ReduceOp::prod:
      return MPI_PROD;
    case ReduceOp::min:
      return MPI_MIN;
    case ReduceOp::max:
      return MPI_MAX;
    case ReduceOp::avg:
      break;
  }
  LOOM_THROW("comm mpi: MPI has no avg reduction");
}
}  // namespace

bool launched_by_mpirun() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE"); }

MpiTransport::MpiTransport() {
  set_timeout(default_timeout_s());
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    finalize_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  int* ub = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
  if (flag && ub) tag_ub_ = *ub;
}

MpiTransport::~MpiTransport() {
  if (finalize_) MPI_Finalize();
}

Request MpiTransport::isend(int peer, uint32_t tag, const void* data, size_t bytes) {
  check_peer_arg("isend", peer, bytes, data);
  LOOM_CHECK(bytes <= INT_MAX, "comm mpi: message of {} bytes exceeds MPI's int count", bytes);
  Request req = make_request(peer, tag, bytes, true);
  std::lock_guard g(mu_);
  MPI_Request r;
  check(MPI_Isend(data, static_cast<int>(bytes), MPI_BYTE, peer, static_cast<int>(tag % (tag_ub_ + 1u)), MPI_COMM_WORLD,
                  &r),
        "MPI_Isend");
  mpi_reqs_.push_back(from_mpi(r));
  reqs_.push_back(req);
  return req;
}

Request MpiTransport::irecv(int peer, uint32_t tag, void* data, size_t bytes) {
  check_peer_arg("irecv", peer, bytes, data);
  LOOM_CHECK(bytes <= INT_MAX, "comm mpi: message of {} bytes exceeds MPI's int count", bytes);
  Request req = make_request(peer, tag, bytes, false);
  std::lock_guard g(mu_);
  MPI_Request r;
  check(MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, static_cast<int>(tag % (tag_ub_ + 1u)), MPI_COMM_WORLD,
                  &r),
        "MPI_Irecv");
  mpi_reqs_.push_back(from_mpi(r));
  reqs_.push_back(req);
  return req;
}

bool MpiTransport::progress() {
  std::lock_guard g(mu_);
  if (mpi_reqs_.empty()) return false;
  std::vector<MPI_Request> rs(mpi_reqs_.size());
  for (size_t i = 0; i < rs.size(); ++i) rs[i] = to_mpi(mpi_reqs_[i]);
  std::vector<int> idx(rs.size());
  std::vector<MPI_Status> st(rs.size());
  int n = 0;
  check(MPI_Testsome(static_cast<int>(rs.size()), rs.data(), &n, idx.data(), st.data()), "MPI_Testsome");
  if (n <= 0) return false;
  std::vector<char> done(rs.size(), 0);
  for (int k = 0; k < n; ++k) {
    const int i = idx[k];
    done[i] = 1;
    int got = 0;
    MPI_Get_count(&st[k], MPI_BYTE, &got);  // statuses are in completion order, like idx
    if (!reqs_[i]->is_send && static_cast<size_t>(got) != reqs_[i]->bytes) {
      reqs_[i]->fail(
          fmt::format("message of {} bytes does not match the posted receive of {} bytes", got, reqs_[i]->bytes));
    } else {
      reqs_[i]->complete();
    }
  }
  size_t w = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    if (done[i]) continue;
    mpi_reqs_[w] = from_mpi(rs[i]);
    reqs_[w] = reqs_[i];
    ++w;
  }
  mpi_reqs_.resize(w);
  reqs_.resize(w);
  return true;
}

void MpiTransport::native(Coll c, const void* in, void* out, size_t count, DType t, ReduceOp op, int root) {
  LOOM_CHECK(count <= INT_MAX, "comm mpi: count {} exceeds MPI's int", count);
  const int n = static_cast<int>(count);
  switch (c) {
    case Coll::allreduce:
      check(MPI_Allreduce(MPI_IN_PLACE, out, n, mpi_type(t), mpi_op(op), MPI_COMM_WORLD), "MPI_Allreduce");
      return;
    case Coll::reduce_scatter:
      check(MPI_Reduce_scatter_block(in, out, n, mpi_type(t), mpi_op(op), MPI_COMM_WORLD), "MPI_Reduce_scatter_block");
      return;
    case Coll::allgather:
      check(MPI_Allgather(in, n, mpi_type(t), out, n, mpi_type(t), MPI_COMM_WORLD), "MPI_Allgather");
      return;
    case Coll::broadcast:
      check(MPI_Bcast(out, n, mpi_type(t), root, MPI_COMM_WORLD), "MPI_Bcast");
      return;
    case Coll::reduce: {
      int me = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &me);
      check(MPI_Reduce(me == root ? MPI_IN_PLACE : out, me == root ? out : nullptr, n, mpi_type(t), mpi_op(op), root,
                       MPI_COMM_WORLD),
            "MPI_Reduce");
      return;
    }
    case Coll::alltoall:
      check(MPI_Alltoall(in, n, mpi_type(t), out, n, mpi_type(t), MPI_COMM_WORLD), "MPI_Alltoall");
      return;
    case Coll::barrier:
      check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
      return;
  }
}

}  // namespace loom::comm
