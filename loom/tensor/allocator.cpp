#include "loom/tensor/allocator.h"

#include <sys/mman.h>

#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "loom/base/error.h"

namespace loom {

struct CachingAllocator::Impl {
  mutable std::mutex mu;
  // size class -> free blocks of exactly that class
  std::map<size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;
  size_t limit = size_t{8} << 30;
};

CachingAllocator::CachingAllocator() : impl_(new Impl) {
  if (const char* env = std::getenv("LOOM_ALLOC_CACHE_MB")) {
    impl_->limit = static_cast<size_t>(std::strtoull(env, nullptr, 10)) << 20;
  }
}

CachingAllocator& CachingAllocator::instance() {
  // Never destroyed: tensors with static lifetime may be freed after main returns.
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

size_t CachingAllocator::round_size(size_t n) {
  if (n <= 64) return 64;
  if (n <= 4096) return (n + 63) & ~size_t{63};
  // Four classes per power of two above 4 KiB: at most 25% waste, few distinct classes.
  size_t p = std::bit_floor(n - 1);
  size_t step = p / 4;
  return (n + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  size_t size = round_size(nbytes);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& st = impl_->stats;
    st.allocations++;
    auto it = impl_->free_lists.find(size);
    if (it != impl_->free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      st.cache_hits++;
      st.bytes_cached -= size;
      st.bytes_in_use += size;
      if (st.bytes_in_use > st.peak_bytes_in_use) st.peak_bytes_in_use = st.bytes_in_use;
      return p;
    }
    st.os_allocations++;
    st.bytes_in_use += size;
    if (st.bytes_in_use > st.peak_bytes_in_use) st.peak_bytes_in_use = st.bytes_in_use;
  }
  void* p = std::aligned_alloc(64, size);
  if (!p) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stats.bytes_in_use -= size;
    LOOM_THROW("allocator: out of memory allocating {} bytes", size);
  }
#ifdef MADV_HUGEPAGE
  // Large blocks on huge pages take 512x fewer first-touch faults.
  if (size >= (size_t{4} << 20)) {
    uintptr_t b = (reinterpret_cast<uintptr_t>(p) + 4095) & ~uintptr_t{4095};
    uintptr_t e = (reinterpret_cast<uintptr_t>(p) + size) & ~uintptr_t{4095};
    if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
  }
#endif
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t size = round_size(nbytes);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& st = impl_->stats;
    st.bytes_in_use -= size;
    if (st.bytes_cached + size <= impl_->limit) {
      impl_->free_lists[size].push_back(ptr);
      st.bytes_cached += size;
      return;
    }
    st.os_frees++;
  }
  std::free(ptr);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.peak_bytes_in_use = impl_->stats.bytes_in_use;
}

void CachingAllocator::empty_cache() {
  std::map<size_t, std::vector<void*>> lists;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    lists.swap(impl_->free_lists);
    for (auto& [size, blocks] : lists) impl_->stats.os_frees += blocks.size();
    impl_->stats.bytes_cached = 0;
  }
  for (auto& [size, blocks] : lists)
    for (void* p : blocks) std::free(p);
}

void CachingAllocator::set_cache_limit(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->limit = bytes;
  }
  if (bytes == 0) empty_cache();
}

size_t CachingAllocator::cache_limit() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->limit;
}

}  // namespace loom
