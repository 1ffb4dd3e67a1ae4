// Philox4x32-10, a counter-based RNG (Salmon et al., SC'11), as in cuRAND and JAX.
//
// The i-th random number of a stream depends only on (seed, offset, i), never on how the
// work is split among threads: kernels hand each thread a range of counters, and results
// are identical for any thread count.
#pragma once

#include <array>
#include <cstdint>

namespace loom {

// One Philox block: 4 uniform 32-bit words for counter `ctr` under key `key`.
std::array<uint32_t, 4> philox4x32(uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key);

// Maps a 32-bit word to a float in [0, 1) with 24 bits of randomness.
inline float uint_to_unit_float(uint32_t x) { return (x >> 8) * (1.0f / 16777216.0f); }
inline double uint_to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t v = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// A stream of random numbers: a seed and a position. fill_* consume counters; a generator
// copied between threads must not be used by both (copy, then advance one of them).
class Philox {
 public:
  explicit Philox(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves n counters (blocks of 4 words) and returns the first.
  uint64_t reserve(uint64_t n) {
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }
  // Uniform [lo, hi), normal(mean, std) and Bernoulli(p) fills, parallel and deterministic.
  void fill_uniform(float* out, int64_t n, float lo, float hi);
  void fill_uniform(double* out, int64_t n, double lo, double hi);
  void fill_normal(float* out, int64_t n, float mean, float std);
  void fill_normal(double* out, int64_t n, double mean, double std);
  uint32_t next_u32();

 private:
  uint64_t seed_;
  uint64_t offset_;
};

// The process-wide generator used when an op is not handed one (seeded by manual_seed).
Philox& default_generator();
void manual_seed(uint64_t seed);

}  // namespace loom
