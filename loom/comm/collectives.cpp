#include "loom/comm/collectives.h"

#include <cstring>

#include "loom/base/error.h"
#include "loom/profile/trace.h"

namespace loom::comm {

Communicator::Communicator(Transport& t) : t_(t), params_(load_cost_params(t.kind())) {}

void Communicator::set_cost_params(const CostParams& p) {
  params_ = p;
  choices_.clear();
}

CollSpec Communicator::spec(Coll c, size_t count, DType t, Algo algo, int root) const {
  CollSpec s;
  s.coll = c;
  s.algo = algo;
  s.ranks = size();
  s.rank = rank();
  s.count = count;
  s.root = root;
  s.local_size = local_size_;
  if ((c == Coll::broadcast || c == Coll::allreduce) && chunk_bytes_ > 0) {
    s.chunk = std::max<size_t>(1, chunk_bytes_ / dtype_size(t));
  }
  return s;
}

Algo Communicator::resolve(Coll c, size_t count, DType t, Algo algo, int root) {
  if (algo != Algo::automatic) return algo;
  const auto key = std::make_tuple(static_cast<int>(c), count, static_cast<int>(dtype_size(t)), root);
  auto it = choices_.find(key);
  if (it != choices_.end()) return it->second;
  if (choices_.size() > 4096) choices_.clear();
  const Algo a = choose_algo(spec(c, count, t, algo, root), t, params_);
  choices_.emplace(key, a);
  return a;
}

const Schedule& Communicator::schedule_for(const CollSpec& s) {
  const Key key{static_cast<int>(s.coll), static_cast<int>(s.algo), s.count, s.root, s.local_size, s.chunk};
  auto it = schedules_.find(key);
  if (it != schedules_.end()) return it->second;
  if (schedules_.size() > 4096) schedules_.clear();
  return schedules_.emplace(key, make_schedule(s)).first->second;
}

char* Communicator::work(size_t bytes) {
  if (work_.size() < bytes) work_.resize(bytes);
  return work_.data();
}

void Communicator::execute(const Schedule& s, char* buf, DType t, ReduceOp op, const char* in) {
  const size_t es = dtype_size(t);
  const size_t piece = chunk_bytes_ == 0 ? SIZE_MAX : std::max<size_t>(1, chunk_bytes_ / es);
  if (scratch_.size() < s.scratch_count * es) scratch_.resize(s.scratch_count * es);
  const uint32_t seq = seq_++;
  std::vector<Piece>& recvs = pieces_;  // kept between calls: no allocation per call
  std::vector<Request>& sends = send_reqs_;
  std::vector<std::pair<size_t, size_t>>& send_ranges = send_ranges_;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const Step& st = s.steps[i];
    const uint32_t tag = (seq << 16) | static_cast<uint32_t>(i & 0xffff);
    recvs.clear();
    sends.clear();
    send_ranges.clear();
    // Small steps send first (the peer's wait is the latency that matters; an early message
    // costs one small copy); large steps post their receives first so that data lands in
    // place instead of in an early-message buffer.
    size_t step_bytes = 0;
    for (const Xfer& x : st.sends) step_bytes += x.count * es;
    const bool small = step_bytes <= kSmallStepBytes;
    auto post_sends = [&] {
      for (const Xfer& x : st.sends) {
        size_t done = 0;
        do {
          const size_t n = std::min(piece, x.count - done);
          const char* base = x.from_input ? in : buf;
          sends.push_back(t_.isend(x.peer, tag, base + (x.offset + done) * es, n * es));
          send_ranges.push_back(x.from_input ? std::pair<size_t, size_t>{0, 0}
                                             : std::pair<size_t, size_t>{x.offset + done, x.offset + done + n});
          done += n;
        } while (done < x.count);
      }
    };
    if (small) post_sends();
    size_t soff = 0;
    for (const Xfer& x : st.recvs) {
      size_t done = 0;
      do {
        const size_t n = std::min(piece, x.count - done);
        char* dst = buf + (x.offset + done) * es;
        Request req;
        bool after = false;
        if (x.reduce) {
          // Reduce straight from the transport when it can and no send of this step still
          // reads the range; else stage in scratch.
          if (!st.sends_first) req = t_.irecv_reduce(x.peer, tag, dst, n * es, t, op);
          if (!req) {
            req = t_.irecv(x.peer, tag, scratch_.data() + (soff + done) * es, n * es);
            after = true;
          }
        } else {
          req = t_.irecv(x.peer, tag, dst, n * es);
        }
        recvs.push_back({std::move(req), x.offset + done, n, soff + done, after});
        done += n;
      } while (done < x.count);
      if (x.reduce) soff += x.count;
    }
    if (!small) post_sends();
    for (Piece& p : recvs) {
      t_.wait(p.req);
      if (!p.reduce_after) continue;
      // A range this step also sends (recursive doubling) is reduced once the pieces of
      // it that are being sent have gone -- piece by piece, so the reduction of one can
      // overlap the transfer of the next, instead of after every send of the step.
      if (st.sends_first)
        for (size_t k = 0; k < sends.size(); ++k)
          if (send_ranges[k].first < p.offset + p.count && p.offset < send_ranges[k].second) t_.wait(sends[k]);
      reduce_into(buf + p.offset * es, scratch_.data() + p.scratch * es, p.count, t, op);
    }
    t_.wait_all(sends);
    for (const Copy& c : st.copies) {
      if (c.count) std::memcpy(buf + c.dst * es, (c.from_input ? in : buf) + c.src * es, c.count * es);
    }
  }
}

void Communicator::allreduce(void* buf, size_t count, DType t, ReduceOp op, Algo algo) {
  LOOM_TRACE_SCOPE("allreduce", "comm");
  const CollSpec s = spec(Coll::allreduce, count, t, resolve(Coll::allreduce, count, t, algo), 0);
  execute(schedule_for(s), static_cast<char*>(buf), t, op);
  if (op == ReduceOp::avg) finish_avg(buf, count, t, size());
}

void Communicator::reduce_scatter(const void* in, void* out, size_t count, DType t, ReduceOp op, Algo algo) {
  LOOM_TRACE_SCOPE("reduce_scatter", "comm");
  const size_t es = dtype_size(t), total = count * size() * es;
  const CollSpec s = spec(Coll::reduce_scatter, count, t, resolve(Coll::reduce_scatter, count, t, algo), 0);
  char* w = work(total);
  if (total) std::memcpy(w, in, total);
  execute(schedule_for(s), w, t, op);
  if (count) std::memcpy(out, w + rank() * count * es, count * es);
  if (op == ReduceOp::avg) finish_avg(out, count, t, size());
}

void Communicator::allgather(const void* in, void* out, size_t count, DType t, Algo algo) {
  LOOM_TRACE_SCOPE("allgather", "comm");
  const size_t es = dtype_size(t);
  char* o = static_cast<char*>(out);
  if (count && o + rank() * count * es != in) std::memmove(o + rank() * count * es, in, count * es);
  const CollSpec s = spec(Coll::allgather, count, t, resolve(Coll::allgather, count, t, algo), 0);
  execute(schedule_for(s), o, t, ReduceOp::sum);
}

void Communicator::broadcast(void* buf, size_t count, DType t, int root, Algo algo) {
  LOOM_TRACE_SCOPE("broadcast", "comm");
  const CollSpec s = spec(Coll::broadcast, count, t, resolve(Coll::broadcast, count, t, algo, root), root);
  execute(schedule_for(s), static_cast<char*>(buf), t, ReduceOp::sum);
}

void Communicator::reduce(void* buf, size_t count, DType t, ReduceOp op, int root, Algo algo) {
  LOOM_TRACE_SCOPE("reduce", "comm");
  const CollSpec s = spec(Coll::reduce, count, t, resolve(Coll::reduce, count, t, algo, root), root);
  execute(schedule_for(s), static_cast<char*>(buf), t, op);
  if (op == ReduceOp::avg && rank() == root) finish_avg(buf, count, t, size());
}

void Communicator::alltoall(const void* in, void* out, size_t count, DType t, Algo algo) {
  LOOM_TRACE_SCOPE("alltoall", "comm");
  const CollSpec s = spec(Coll::alltoall, count, t, resolve(Coll::alltoall, count, t, algo), 0);
  if (in != out) {
    execute(schedule_for(s), static_cast<char*>(out), t, ReduceOp::sum, static_cast<const char*>(in));
    return;
  }
  // In place: the input must survive until it is sent, so it is staged once.
  const size_t bytes = count * size() * dtype_size(t);
  char* w = work(bytes);
  if (bytes) std::memcpy(w, in, bytes);
  execute(schedule_for(s), static_cast<char*>(out), t, ReduceOp::sum, w);
}

void Communicator::barrier() {
  LOOM_TRACE_SCOPE("barrier", "comm");
  const CollSpec s = spec(Coll::barrier, 0, DType::f32, Algo::dissemination, 0);
  execute(schedule_for(s), nullptr, DType::f32, ReduceOp::sum);
}

}  // namespace loom::comm
