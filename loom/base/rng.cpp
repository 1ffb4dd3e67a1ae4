#include "loom/base/rng.h"

#include <cmath>

#include "loom/base/thread_pool.h"

namespace loom {

std::array<uint32_t, 4> philox4x32(uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(ctr_lo), c1 = static_cast<uint32_t>(ctr_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(ctr_hi), c3 = static_cast<uint32_t>(ctr_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

namespace {

// Each block of 4 words fills 4 outputs (uniform) or 2 (normal, via Box-Muller on pairs of
// doubles would waste; we use 2 floats per 2 words). Work splits by block index, so the
// outcome does not depend on the thread count.
template <typename T, typename Gen>
void fill_blocks(T* out, int64_t n, int64_t per_block, uint64_t first, uint64_t seed, Gen gen) {
  int64_t blocks = (n + per_block - 1) / per_block;
  parallel_for(0, blocks, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      auto w = philox4x32(first + static_cast<uint64_t>(b), 0, seed);
      T vals[4] = {};
      gen(w, vals);
      int64_t base = b * per_block;
      for (int64_t j = 0; j < per_block && base + j < n; ++j) out[base + j] = vals[j];
    }
  });
}

}  // namespace

void Philox::fill_uniform(float* out, int64_t n, float lo, float hi) {
  uint64_t first = reserve((n + 3) / 4);
  fill_blocks(out, n, 4, first, seed_, [&](const std::array<uint32_t, 4>& w, float* v) {
    for (int j = 0; j < 4; ++j) v[j] = lo + (hi - lo) * uint_to_unit_float(w[j]);
  });
}

void Philox::fill_uniform(double* out, int64_t n, double lo, double hi) {
  uint64_t first = reserve((n + 1) / 2);
  fill_blocks(out, n, 2, first, seed_, [&](const std::array<uint32_t, 4>& w, double* v) {
    v[0] = lo + (hi - lo) * uint_to_unit_double(w[0], w[1]);
    v[1] = lo + (hi - lo) * uint_to_unit_double(w[2], w[3]);
  });
}

void Philox::fill_normal(float* out, int64_t n, float mean, float std) {
  uint64_t first = reserve((n + 3) / 4);
  fill_blocks(out, n, 4, first, seed_, [&](const std::array<uint32_t, 4>& w, float* v) {
    for (int j = 0; j < 4; j += 2) {
      // Box-Muller; u1 in (0, 1] avoids log(0).
      double u1 = 1.0 - uint_to_unit_float(w[j]);
      double u2 = uint_to_unit_float(w[j + 1]);
      double r = std::sqrt(-2.0 * std::log(u1));
      v[j] = mean + std * static_cast<float>(r * std::cos(2 * M_PI * u2));
      v[j + 1] = mean + std * static_cast<float>(r * std::sin(2 * M_PI * u2));
    }
  });
}

void Philox::fill_normal(double* out, int64_t n, double mean, double std) {
  uint64_t first = reserve((n + 1) / 2);
  fill_blocks(out, n, 2, first, seed_, [&](const std::array<uint32_t, 4>& w, double* v) {
    double u1 = 1.0 - uint_to_unit_double(w[0], w[1]);
    double u2 = uint_to_unit_double(w[2], w[3]);
    double r = std::sqrt(-2.0 * std::log(u1));
    v[0] = mean + std * r * std::cos(2 * M_PI * u2);
    v[1] = mean + std * r * std::sin(2 * M_PI * u2);
  });
}

uint32_t Philox::next_u32() { return philox4x32(reserve(1), 0, seed_)[0]; }

Philox& default_generator() {
  thread_local Philox gen(0x10011);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator() = Philox(seed); }

}  // namespace loom
