#include "loom/comm/schedule.h"

#include <algorithm>

#include "loom/base/error.h"

namespace loom::comm {
namespace {

int ceil_log2(int p) {
  int l = 0;
  while ((1 << l) < p) ++l;
  return l;
}
int floor_pow2(int p) {
  int v = 1;
  while (v * 2 <= p) v *= 2;
  return v;
}
int mod(int a, int n) { return ((a % n) + n) % n; }

Step& add(Schedule& s) { return s.steps.emplace_back(); }

// Non-powers of two: the first 2*rem ranks pair up; even ones hand their data to the odd
// neighbour and sit out the power-of-two core (MPICH's and Rabenseifner's scheme).
struct Fold {
  int p, p2, rem;
  explicit Fold(int ranks) : p(ranks), p2(floor_pow2(ranks)), rem(ranks - floor_pow2(ranks)) {}
  int newrank(int r) const { return r < 2 * rem ? (r % 2 ? r / 2 : -1) : r - rem; }
  int active(int nr) const { return nr < rem ? 2 * nr + 1 : nr + rem; }
  int first_block(int nr) const { return nr < rem ? 2 * nr : nr + rem; }
  int end_block(int nr) const { return nr < rem ? 2 * nr + 2 : nr + rem + 1; }
};

// Elements of the new-rank range [a, b) given the offsets of the p original blocks.
std::pair<size_t, size_t> nr_range(const Fold& f, const std::vector<size_t>& off, int a, int b) {
  return {off[f.first_block(a)], off[f.end_block(b - 1)]};
}
void push(std::vector<Xfer>& v, int peer, size_t begin, size_t end) { v.push_back({peer, begin, end - begin}); }

// Recursive halving reduce-scatter over the power-of-two core: new rank nr ends holding the
// reduced range of its own blocks.
void halving_rs(Schedule& s, const Fold& f, int nr, const std::vector<size_t>& off) {
  int a = 0, b = f.p2;
  for (int m = f.p2 / 2; m >= 1; m /= 2) {
    Step& st = add(s);
    st.reduce = true;
    if (nr < 0) continue;
    const int peer = f.active(nr ^ m);
    const int mid = a + m;
    if (nr < mid) {
      auto [sb, se] = nr_range(f, off, mid, b);
      auto [rb, re] = nr_range(f, off, a, mid);
      push(st.sends, peer, sb, se);
      push(st.recvs, peer, rb, re);
      b = mid;
    } else {
      auto [sb, se] = nr_range(f, off, a, mid);
      auto [rb, re] = nr_range(f, off, mid, b);
      push(st.sends, peer, sb, se);
      push(st.recvs, peer, rb, re);
      a = mid;
    }
  }
}

// Recursive doubling allgather over the core: each step exchanges the aligned range held.
void doubling_ag(Schedule& s, const Fold& f, int nr, const std::vector<size_t>& off) {
  for (int m = 1; m < f.p2; m *= 2) {
    Step& st = add(s);
    if (nr < 0) continue;
    const int partner = nr ^ m;
    const int mine = nr & ~(m - 1), theirs = partner & ~(m - 1);
    auto [sb, se] = nr_range(f, off, mine, mine + m);
    auto [rb, re] = nr_range(f, off, theirs, theirs + m);
    push(st.sends, f.active(partner), sb, se);
    push(st.recvs, f.active(partner), rb, re);
  }
}

// Ring reduce-scatter over a group: member i ends with block i reduced. p-1 steps.
void ring_rs(Schedule& s, const std::vector<int>& g, int me, const std::vector<size_t>& off) {
  const int n = static_cast<int>(g.size());
  for (int st = 0; st < n - 1; ++st) {
    Step& x = add(s);
    x.reduce = true;
    const int sb = mod(me - st - 1, n), rb = mod(me - st - 2, n);
    push(x.sends, g[mod(me + 1, n)], off[sb], off[sb + 1]);
    push(x.recvs, g[mod(me - 1, n)], off[rb], off[rb + 1]);
  }
}

// Ring allgather over a group: member i starts with block i. p-1 steps.
void ring_ag(Schedule& s, const std::vector<int>& g, int me, const std::vector<size_t>& off) {
  const int n = static_cast<int>(g.size());
  for (int st = 0; st < n - 1; ++st) {
    Step& x = add(s);
    const int sb = mod(me - st, n), rb = mod(me - st - 1, n);
    push(x.sends, g[mod(me + 1, n)], off[sb], off[sb + 1]);
    push(x.recvs, g[mod(me - 1, n)], off[rb], off[rb + 1]);
  }
}

std::vector<int> iota_group(int p) {
  std::vector<int> g(p);
  for (int i = 0; i < p; ++i) g[i] = i;
  return g;
}

std::vector<size_t> equal_blocks(size_t count, int p) {
  std::vector<size_t> off(p + 1);
  for (int i = 0; i <= p; ++i) off[i] = count * static_cast<size_t>(i);
  return off;
}

// Binomial tree reduce of [0, count) to root (ceil(log2 p) steps).
void binomial_reduce(Schedule& s, int p, int r, int root, size_t count) {
  const int vr = mod(r - root, p);
  for (int m = 1; m < p; m *= 2) {
    Step& x = add(s);
    x.reduce = true;
    if ((vr & (2 * m - 1)) == m) {
      push(x.sends, mod(vr - m + root, p), 0, count);
    } else if ((vr & (2 * m - 1)) == 0 && vr + m < p) {
      push(x.recvs, mod(vr + m + root, p), 0, count);
    }
  }
}

// Binomial tree broadcast of [0, count) from root (ceil(log2 p) steps).
void binomial_bcast(Schedule& s, int p, int r, int root, size_t count) {
  const int vr = mod(r - root, p);
  for (int k = ceil_log2(p) - 1; k >= 0; --k) {
    const int m = 1 << k;
    Step& x = add(s);
    if ((vr & (2 * m - 1)) == 0 && vr + m < p) {
      push(x.sends, mod(vr + m + root, p), 0, count);
    } else if ((vr & (2 * m - 1)) == m) {
      push(x.recvs, mod(vr - m + root, p), 0, count);
    }
  }
}

// Fold step for non-powers of two: even ranks below 2*rem send [begin,end) to the odd
// neighbour, which reduces (or copies) it.
void fold_in(Schedule& s, const Fold& f, int r, size_t begin, size_t end, bool reduce) {
  if (f.rem == 0) return;
  Step& x = add(s);
  x.reduce = reduce;
  if (r >= 2 * f.rem) return;
  if (r % 2 == 0) {
    push(x.sends, r + 1, begin, end);
  } else {
    push(x.recvs, r - 1, begin, end);
  }
}

// Unfold: odd ranks below 2*rem return the ranges to the even neighbour (copy).
void fold_out(Schedule& s, const Fold& f, int r, const std::vector<std::pair<size_t, size_t>>& ranges) {
  if (f.rem == 0) return;
  Step& x = add(s);
  if (r >= 2 * f.rem) return;
  for (auto [b, e] : ranges) push(r % 2 ? x.sends : x.recvs, r % 2 ? r - 1 : r + 1, b, e);
}

void allreduce(Schedule& s, const CollSpec& c) {
  const int p = c.ranks, r = c.rank;
  const size_t n = c.count;
  s.buffer_count = n;
  if (p == 1) return;
  switch (c.algo) {
    case Algo::ring: {
      // Slices of p * chunk elements, each through the 2(p-1) ring stages, one step apart:
      // step t runs stage t - k of slice k. One slice is the textbook ring.
      const size_t slice = c.chunk == 0 ? std::max<size_t>(n, 1) : c.chunk * p;
      const int slices = static_cast<int>(std::max<size_t>(1, (n + slice - 1) / slice));
      const int stages = 2 * (p - 1), next = mod(r + 1, p), prev = mod(r - 1, p);
      s.pipelined = slices > 1;
      for (int t = 0; t < slices + stages - 1; ++t) {
        Step& x = add(s);
        for (int k = std::max(0, t - stages + 1); k <= std::min(t, slices - 1); ++k) {
          const size_t b = std::min(n, k * slice), e = std::min(n, (k + 1) * slice);
          auto off = partition(e - b, p);
          for (auto& o : off) o += b;
          const int st = t - k;
          const bool rs = st < p - 1;
          const int sb = rs ? mod(r - st - 1, p) : mod(r - (st - p + 1), p);
          const int rb = mod(sb - 1, p);
          push(x.sends, next, off[sb], off[sb + 1]);
          push(x.recvs, prev, off[rb], off[rb + 1]);
          x.recvs.back().reduce = rs;
        }
      }
      return;
    }
    case Algo::recursive_doubling: {
      const Fold f(p);
      fold_in(s, f, r, 0, n, true);
      const int nr = f.newrank(r);
      for (int m = 1; m < f.p2; m *= 2) {
        Step& x = add(s);
        x.reduce = true;
        if (nr < 0) continue;
        push(x.sends, f.active(nr ^ m), 0, n);
        push(x.recvs, f.active(nr ^ m), 0, n);
      }
      fold_out(s, f, r, {{0, n}});
      return;
    }
    case Algo::rabenseifner: {
      const Fold f(p);
      const auto off = partition(n, p);
      fold_in(s, f, r, 0, n, true);
      halving_rs(s, f, f.newrank(r), off);
      doubling_ag(s, f, f.newrank(r), off);
      fold_out(s, f, r, {{0, n}});
      return;
    }
    case Algo::tree:
      binomial_reduce(s, p, r, 0, n);
      binomial_bcast(s, p, r, 0, n);
      return;
    case Algo::hierarchical: {
      const int L = c.local_size, N = p / L, node = r / L, l = r % L;
      std::vector<int> local(L), cross(N);
      for (int i = 0; i < L; ++i) local[i] = node * L + i;
      for (int i = 0; i < N; ++i) cross[i] = i * L + l;
      const auto off = partition(n, L);
      ring_rs(s, local, l, off);
      auto sub = partition(off[l + 1] - off[l], N);
      for (auto& o : sub) o += off[l];
      ring_rs(s, cross, node, sub);
      ring_ag(s, cross, node, sub);
      ring_ag(s, local, l, off);
      return;
    }
    default:
      break;
  }
  LOOM_THROW("comm: allreduce has no algorithm '{}'", algo_name(c.algo));
}

void reduce_scatter(Schedule& s, const CollSpec& c) {
  const int p = c.ranks, r = c.rank;
  const auto off = equal_blocks(c.count, p);
  s.buffer_count = off[p];
  if (p == 1) return;
  if (c.algo == Algo::ring) {
    ring_rs(s, iota_group(p), r, off);
    return;
  }
  if (c.algo == Algo::halving) {
    const Fold f(p);
    fold_in(s, f, r, 0, off[p], true);
    halving_rs(s, f, f.newrank(r), off);
    if (f.rem) {  // odd ranks return the even neighbour's block
      Step& x = add(s);
      if (r < 2 * f.rem) {
        const int even = r % 2 ? r - 1 : r;
        push(r % 2 ? x.sends : x.recvs, r % 2 ? r - 1 : r + 1, off[even], off[even + 1]);
      }
    }
    return;
  }
  LOOM_THROW("comm: reduce_scatter has no algorithm '{}'", algo_name(c.algo));
}

void allgather(Schedule& s, const CollSpec& c) {
  const int p = c.ranks, r = c.rank;
  const auto off = equal_blocks(c.count, p);
  s.buffer_count = off[p];
  if (p == 1) return;
  switch (c.algo) {
    case Algo::ring:
      ring_ag(s, iota_group(p), r, off);
      return;
    case Algo::recursive_doubling: {
      const Fold f(p);
      if (f.rem) {  // even ranks hand their block to the odd neighbour
        Step& x = add(s);
        if (r < 2 * f.rem) {
          const int even = r % 2 ? r - 1 : r;
          push(r % 2 ? x.recvs : x.sends, r % 2 ? r - 1 : r + 1, off[even], off[even + 1]);
        }
      }
      doubling_ag(s, f, f.newrank(r), off);
      // Everything but the even rank's own block goes back to it.
      const int even = r % 2 ? r - 1 : r;
      fold_out(s, f, r, {{0, off[even]}, {off[even + 1], off[p]}});
      return;
    }
    case Algo::bruck: {
      // Blocks keep their absolute positions, so no final rotation: after step k rank r holds
      // blocks r .. r+2^(k+1)-1 (mod p).
      for (int d = 1; d < p; d *= 2) {
        Step& x = add(s);
        const int cnt = std::min(d, p - d);
        auto blocks = [&](std::vector<Xfer>& v, int peer, int first) {
          const int end = first + cnt;
          push(v, peer, off[first], off[std::min(end, p)]);
          if (end > p) push(v, peer, off[0], off[end - p]);
        };
        blocks(x.sends, mod(r - d, p), r);
        blocks(x.recvs, mod(r + d, p), mod(r + d, p));
      }
      return;
    }
    default:
      break;
  }
  LOOM_THROW("comm: allgather has no algorithm '{}'", algo_name(c.algo));
}

void broadcast(Schedule& s, const CollSpec& c) {
  const int p = c.ranks, r = c.rank;
  s.buffer_count = c.count;
  if (p == 1) return;
  if (c.algo == Algo::binomial) {
    binomial_bcast(s, p, r, c.root, c.count);
    return;
  }
  if (c.algo == Algo::chain) {
    const size_t chunk = c.chunk == 0 || c.chunk > c.count ? std::max<size_t>(c.count, 1) : c.chunk;
    const int chunks = static_cast<int>(std::max<size_t>(1, (c.count + chunk - 1) / chunk));
    const int vr = mod(r - c.root, p);
    auto range = [&](int k) { return std::pair(std::min(c.count, k * chunk), std::min(c.count, (k + 1) * chunk)); };
    for (int st = 0; st < chunks + p - 2; ++st) {
      Step& x = add(s);
      const int rc = st - (vr - 1), sc = st - vr;
      if (vr >= 1 && rc >= 0 && rc < chunks) {
        auto [b, e] = range(rc);
        push(x.recvs, mod(vr - 1 + c.root, p), b, e);
      }
      if (vr <= p - 2 && sc >= 0 && sc < chunks) {
        auto [b, e] = range(sc);
        push(x.sends, mod(vr + 1 + c.root, p), b, e);
      }
    }
    return;
  }
  LOOM_THROW("comm: broadcast has no algorithm '{}'", algo_name(c.algo));
}

}  // namespace

std::vector<size_t> partition(size_t count, int parts) {
  std::vector<size_t> off(parts + 1);
  const size_t base = count / parts, extra = count % parts;
  off[0] = 0;
  for (int i = 0; i < parts; ++i) off[i + 1] = off[i] + base + (static_cast<size_t>(i) < extra ? 1 : 0);
  return off;
}

const char* coll_name(Coll c) {
  switch (c) {
    case Coll::allreduce:
      return "allreduce";
    case Coll::reduce_scatter:
      return "reducescatter";
    case Coll::allgather:
      return "allgather";
    case Coll::broadcast:
      return "bcast";
    case Coll::reduce:
      return "reduce";
    case Coll::alltoall:
      return "alltoall";
    case Coll::barrier:
      return "barrier";
  }
  return "?";
}

Coll parse_coll(const std::string& s) {
  for (Coll c : {Coll::allreduce, Coll::reduce_scatter, Coll::allgather, Coll::broadcast, Coll::reduce, Coll::alltoall,
                 Coll::barrier}) {
    if (s == coll_name(c)) return c;
  }
  if (s == "reduce_scatter" || s == "reduce-scatter") return Coll::reduce_scatter;
  if (s == "broadcast") return Coll::broadcast;
  LOOM_THROW("comm: unknown collective '{}'", s);
}

const char* algo_name(Algo a) {
  switch (a) {
    case Algo::automatic:
      return "auto";
    case Algo::ring:
      return "ring";
    case Algo::recursive_doubling:
      return "recursive_doubling";
    case Algo::rabenseifner:
      return "rabenseifner";
    case Algo::halving:
      return "halving";
    case Algo::tree:
      return "tree";
    case Algo::hierarchical:
      return "hierarchical";
    case Algo::bruck:
      return "bruck";
    case Algo::binomial:
      return "binomial";
    case Algo::chain:
      return "chain";
    case Algo::pairwise:
      return "pairwise";
    case Algo::dissemination:
      return "dissemination";
  }
  return "?";
}

Algo parse_algo(const std::string& s) {
  for (int i = 0; i <= static_cast<int>(Algo::dissemination); ++i) {
    if (s == algo_name(static_cast<Algo>(i))) return static_cast<Algo>(i);
  }
  LOOM_THROW(
      "comm: unknown algorithm '{}' (expected auto, ring, recursive_doubling, rabenseifner, halving, tree, "
      "hierarchical, bruck, binomial, chain, pairwise or dissemination)",
      s);
}

std::vector<Algo> algos_for(Coll c) {
  switch (c) {
    case Coll::allreduce:
      return {Algo::ring, Algo::recursive_doubling, Algo::rabenseifner, Algo::tree, Algo::hierarchical};
    case Coll::reduce_scatter:
      return {Algo::ring, Algo::halving};
    case Coll::allgather:
      return {Algo::ring, Algo::recursive_doubling, Algo::bruck};
    case Coll::broadcast:
      return {Algo::binomial, Algo::chain};
    case Coll::reduce:
      return {Algo::binomial};
    case Coll::alltoall:
      return {Algo::pairwise};
    case Coll::barrier:
      return {Algo::dissemination};
  }
  return {};
}

bool algo_supported(const CollSpec& c, std::string* why) {
  auto no = [&](std::string w) {
    if (why) *why = std::move(w);
    return false;
  };
  const auto algos = algos_for(c.coll);
  if (std::find(algos.begin(), algos.end(), c.algo) == algos.end()) {
    return no(fmt::format("{} has no algorithm '{}'", coll_name(c.coll), algo_name(c.algo)));
  }
  if (c.algo == Algo::hierarchical && (c.local_size < 1 || c.local_size > c.ranks || c.ranks % c.local_size != 0)) {
    return no(fmt::format("hierarchical needs a local size dividing the {} ranks (got {})", c.ranks, c.local_size));
  }
  return true;
}

Schedule make_schedule(const CollSpec& c) {
  LOOM_CHECK(c.ranks >= 1 && c.rank >= 0 && c.rank < c.ranks, "comm {}: rank {} out of range for {} ranks",
             coll_name(c.coll), c.rank, c.ranks);
  LOOM_CHECK(c.root >= 0 && c.root < c.ranks, "comm {}: root {} out of range for {} ranks", coll_name(c.coll), c.root,
             c.ranks);
  std::string why;
  LOOM_CHECK(algo_supported(c, &why), "comm: {}", why);
  Schedule s;
  const int p = c.ranks, r = c.rank;
  switch (c.coll) {
    case Coll::allreduce:
      allreduce(s, c);
      break;
    case Coll::reduce_scatter:
      reduce_scatter(s, c);
      break;
    case Coll::allgather:
      allgather(s, c);
      break;
    case Coll::broadcast:
      broadcast(s, c);
      break;
    case Coll::reduce:
      s.buffer_count = c.count;
      binomial_reduce(s, p, r, c.root, c.count);
      break;
    case Coll::alltoall: {
      // Straight from the input to the output: no staging copies.
      const size_t n = c.count;
      s.buffer_count = n * p;
      Step& first = add(s);
      first.copies.push_back({r * n, r * n, n, true});
      for (int k = 1; k < p; ++k) {
        Step& x = k == 1 ? s.steps.back() : add(s);
        const int to = mod(r + k, p), from = mod(r - k, p);
        push(x.sends, to, to * n, (to + 1) * n);
        x.sends.back().from_input = true;
        push(x.recvs, from, from * n, (from + 1) * n);
      }
      break;
    }
    case Coll::barrier:
      for (int d = 1; d < p; d *= 2) {
        Step& x = add(s);
        push(x.sends, mod(r + d, p), 0, 0);
        push(x.recvs, mod(r - d, p), 0, 0);
      }
      break;
  }
  for (Step& st : s.steps) {
    for (Xfer& x : st.recvs) x.reduce = x.reduce || st.reduce;
    size_t reduced = 0;
    for (const Xfer& x : st.recvs) reduced += x.reduce ? x.count : 0;
    s.scratch_count = std::max(s.scratch_count, reduced);
    for (const Xfer& x : st.recvs) {
      if (!x.reduce) continue;
      for (const Xfer& y : st.sends) {
        if (y.from_input) continue;
        if (x.count && y.count && x.offset < y.offset + y.count && y.offset < x.offset + x.count) st.sends_first = true;
      }
    }
  }
  return s;
}

ScheduleStats schedule_stats(const Schedule& s) {
  ScheduleStats st;
  for (const Step& x : s.steps) {
    if (!x.sends.empty() || !x.recvs.empty() || !x.copies.empty()) ++st.steps;
    st.messages_sent += x.sends.size();
    for (const Xfer& t : x.sends) st.elements_sent += t.count;
    for (const Xfer& t : x.recvs) st.elements_reduced += t.reduce ? t.count : 0;
  }
  return st;
}

}  // namespace loom::comm
