#include "loom/profile/sampler.h"

#include <cxxabi.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "loom/base/error.h"

namespace loom::profile {
namespace {

constexpr int kMaxFrames = 64;

// Sample records in a flat word array: [tid << 8 | frames, pc, ret, ret, ...].
struct SampleBuffer {
  static constexpr size_t kWords = size_t{1} << 20;  // 8 MiB
  std::unique_ptr<uint64_t[]> words{new uint64_t[kWords]};
  std::atomic<size_t> pos{0};
  std::atomic<int64_t> dropped{0};
};

// Readable-writable mappings (thread stacks among them), sorted, published for the handler.
struct Mappings {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
};

struct State {
  SampleBuffer buffers[2];
  std::atomic<SampleBuffer*> active{nullptr};
  std::atomic<int> in_flight{0};
  std::atomic<const Mappings*> maps{nullptr};
  std::vector<std::unique_ptr<Mappings>> all_maps;  // kept until stop: the handler may read any
  std::map<int, timer_t> timers;
  std::map<int, int> perf_fds;
  bool use_perf = true;  // until perf_event_open fails once
  std::map<int, std::string> thread_names;
  std::map<std::vector<uint64_t>, int64_t> raw;  // (tid, pc, ret...) -> count
  int64_t samples = 0, dropped = 0;
  int hz = 0;
  int helper_tid = 0;
  std::thread helper;
  std::atomic<bool> stop{false};
  std::chrono::steady_clock::time_point t0;
  struct sigaction old_action {};
};

std::mutex g_mutex;  // start/stop
State* g_state = nullptr;
std::atomic<State*> g_handler_state{nullptr};

__attribute__((no_sanitize("address", "undefined"))) void on_sigprof(int, siginfo_t* info, void* uc_void) {
  const int saved_errno = errno;
  State* st = g_handler_state.load(std::memory_order_acquire);
  if (!st) return;
  st->in_flight.fetch_add(1, std::memory_order_acq_rel);
  SampleBuffer* buf = st->active.load(std::memory_order_acquire);
  const Mappings* maps = st->maps.load(std::memory_order_acquire);
  if (buf) {
    const auto* uc = static_cast<const ucontext_t*>(uc_void);
    uint64_t frames[kMaxFrames];
    int n = 0;
    frames[n++] = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RIP]);
    const uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
    uintptr_t fp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
    // The interrupted thread's stack is the mapping holding its stack pointer; frames are
    // only read inside [sp, end of that mapping), so no read can fault.
    uintptr_t hi = 0;
    if (maps) {
      const auto& r = maps->ranges;
      size_t lo_i = 0, hi_i = r.size();
      while (lo_i < hi_i) {
        const size_t mid = (lo_i + hi_i) / 2;
        if (r[mid].second <= sp) lo_i = mid + 1; else hi_i = mid;
      }
      if (lo_i < r.size() && r[lo_i].first <= sp) hi = r[lo_i].second;
    }
    while (n < kMaxFrames && fp >= sp && fp + 16 <= hi && (fp & 7) == 0) {
      const uintptr_t* f = reinterpret_cast<const uintptr_t*>(fp);
      const uintptr_t ret = f[1], next = f[0];
      if (ret < 4096) break;
      frames[n++] = ret;
      if (next <= fp) break;
      fp = next;
    }
    const size_t need = static_cast<size_t>(n) + 1;
    const size_t at = buf->pos.fetch_add(need, std::memory_order_relaxed);
    if (at + need <= SampleBuffer::kWords) {
      const uint64_t tid = static_cast<uint64_t>(::syscall(SYS_gettid));
      buf->words[at] = (tid << 8) | static_cast<uint64_t>(n);
      for (int i = 0; i < n; ++i) buf->words[at + 1 + i] = frames[i];
    } else {
      buf->dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
  st->in_flight.fetch_sub(1, std::memory_order_acq_rel);
  // A perf event signals one overflow and disables itself (event_limit 1): re-arm it.
  if (info->si_code != SI_TIMER && info->si_fd > 0) ioctl(info->si_fd, PERF_EVENT_IOC_REFRESH, 1);
  errno = saved_errno;
}

std::unique_ptr<Mappings> read_mappings() {
  auto m = std::make_unique<Mappings>();
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long a = 0, b = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &a, &b, perms) != 3) continue;
    if (perms[0] == 'r' && perms[1] == 'w') m->ranges.push_back({a, b});
  }
  std::sort(m->ranges.begin(), m->ranges.end());
  return m;
}

std::string read_comm(int tid) {
  std::ifstream in(fmt::format("/proc/self/task/{}/comm", tid));
  std::string name;
  std::getline(in, name);
  return name.empty() ? fmt::format("thread {}", tid) : name;
}

// Gives every thread of the process (but the helper) a CPU-time timer.
void arm_new_threads(State& st) {
  DIR* d = opendir("/proc/self/task");
  if (!d) return;
  while (dirent* e = readdir(d)) {
    const int tid = std::atoi(e->d_name);
    if (tid <= 0 || tid == st.helper_tid || st.timers.count(tid) || st.perf_fds.count(tid)) continue;
    // Preferred: the kernel's software task-clock event, high resolution (a CPU-time POSIX
    // timer fires only on scheduler ticks, capping the rate at CONFIG_HZ, 250 here).
    if (st.use_perf) {
      perf_event_attr attr{};
      attr.size = sizeof(attr);
      attr.type = PERF_TYPE_SOFTWARE;
      attr.config = PERF_COUNT_SW_TASK_CLOCK;
      attr.sample_period = static_cast<uint64_t>(1000000000L / st.hz);
      attr.wakeup_events = 1;
      attr.exclude_kernel = 1;
      attr.exclude_hv = 1;
      attr.disabled = 1;
      const int fd = static_cast<int>(::syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
      if (fd >= 0) {
        f_owner_ex owner{F_OWNER_TID, tid};
        if (fcntl(fd, F_SETFL, O_ASYNC) == 0 && fcntl(fd, F_SETSIG, SIGPROF) == 0 &&
            fcntl(fd, F_SETOWN_EX, &owner) == 0 && ioctl(fd, PERF_EVENT_IOC_REFRESH, 1) == 0) {
          st.perf_fds[tid] = fd;
          st.thread_names[tid] = read_comm(tid);
          continue;
        }
        close(fd);
      }
      if (st.perf_fds.empty()) st.use_perf = false;  // not allowed here: timers for everyone
      else continue;  // the thread may have exited
    }
    // The CPU-time clock of thread `tid` (glibc's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
    const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = tid;
    timer_t timer;
    if (timer_create(clock, &sev, &timer) != 0) continue;  // the thread may have exited
    itimerspec its{};
    const long ns = 1000000000L / st.hz;
    its.it_interval.tv_nsec = ns;
    its.it_value.tv_nsec = ns;
    timer_settime(timer, 0, &its, nullptr);
    st.timers[tid] = timer;
    st.thread_names[tid] = read_comm(tid);
  }
  closedir(d);
}

void drain(State& st, SampleBuffer& b) {
  const size_t end = std::min(b.pos.load(std::memory_order_acquire), SampleBuffer::kWords);
  size_t i = 0;
  while (i < end) {
    const uint64_t head = b.words[i];
    const size_t n = head & 0xff;
    if (n == 0 || i + 1 + n > end) break;
    std::vector<uint64_t> key;
    key.reserve(n + 1);
    key.push_back(head >> 8);
    key.insert(key.end(), b.words.get() + i + 1, b.words.get() + i + 1 + n);
    ++st.raw[key];
    ++st.samples;
    i += 1 + n;
  }
  st.dropped += b.dropped.exchange(0);
  b.pos.store(0, std::memory_order_release);
}

// Swaps the active buffer, waits for handlers still writing into the old one, drains it.
void swap_and_drain(State& st) {
  SampleBuffer* old = st.active.load();
  SampleBuffer* next = old == &st.buffers[0] ? &st.buffers[1] : &st.buffers[0];
  st.active.store(next, std::memory_order_seq_cst);
  while (st.in_flight.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  drain(st, *old);
}

void helper_loop(State* st) {
  st->helper_tid = static_cast<int>(::syscall(SYS_gettid));
  while (!st->stop.load()) {
    auto m = read_mappings();
    st->maps.store(m.get(), std::memory_order_release);
    st->all_maps.push_back(std::move(m));
    arm_new_threads(*st);
    swap_and_drain(*st);
    for (int i = 0; i < 10 && !st->stop.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---- symbolization -------------------------------------------------------------------------

std::string strip_params(std::string s) {
  // "ns::f(int, float) const" -> "ns::f": cut at the '(' matching the last ')'.
  size_t end = s.size();
  if (s.size() > 6 && s.compare(s.size() - 6, 6, " const") == 0) end -= 6;
  if (end == 0 || s[end - 1] != ')') return s;
  int depth = 0;
  for (size_t i = end; i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) return s.substr(0, i);
  }
  return s;
}

// Demangled C++ names of lambdas inside templates run to kilobytes. For profiles: drop the
// std::function wrapper, keep template arguments one level deep ("<...>" below that) and
// parameter lists empty ("()"), except "(anonymous namespace)".
std::string shorten(std::string s) {
  const std::string wrapper = "std::_Function_handler<void (int), ";
  if (s.rfind(wrapper, 0) == 0 && s.size() > wrapper.size() + 12 && s.compare(s.size() - 12, 12, ">::_M_invoke") == 0)
    s = s.substr(wrapper.size(), s.size() - wrapper.size() - 12);
  std::string out;
  int angle = 0, paren = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' && s.compare(i, 21, "(anonymous namespace)") == 0 && paren == 0 && angle <= 1) {
      out += "(anonymous namespace)";
      i += 20;
      continue;
    }
    if (c == '<') {
      if (angle == 1 && paren == 0) out += "...";
      if (angle == 0 && paren == 0) out += c;
      ++angle;
      continue;
    }
    if (c == '>' && angle > 0) {
      --angle;
      if (angle == 0 && paren == 0) out += c;
      continue;
    }
    if (c == '(' && (i == 0 || s[i - 1] != '{')) {
      if (paren == 0 && angle <= 1) out += '(';
      ++paren;
      continue;
    }
    if (c == ')' && paren > 0) {
      --paren;
      if (paren == 0 && angle <= 1) out += ')';
      continue;
    }
    if (paren == 0 && angle <= 1) out += c;
  }
  return out;
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return shorten(strip_params(status == 0 && d ? d.get() : name));
}

// Function symbols of the running executable, from its ELF .symtab (static functions too,
// which dladdr cannot see), shifted by the load bias.
class ExeSymbols {
 public:
  ExeSymbols() {
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* self) {
          static_cast<ExeSymbols*>(self)->bias_ = info->dlpi_addr;
          return 1;  // the first object is the executable
        },
        this);
    std::ifstream in("/proc/self/exe", std::ios::binary);
    std::string f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (f.size() < sizeof(Elf64_Ehdr) || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0) return;
    Elf64_Ehdr eh;
    std::memcpy(&eh, f.data(), sizeof(eh));
    if (eh.e_shoff == 0 || eh.e_shoff + static_cast<size_t>(eh.e_shnum) * sizeof(Elf64_Shdr) > f.size()) return;
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    std::memcpy(sh.data(), f.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
    for (const Elf64_Shdr& s : sh) {
      if (s.sh_type != SHT_SYMTAB || s.sh_link >= sh.size()) continue;
      const Elf64_Shdr& strs = sh[s.sh_link];
      if (s.sh_offset + s.sh_size > f.size() || strs.sh_offset + strs.sh_size > f.size()) continue;
      for (size_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        std::memcpy(&sym, f.data() + s.sh_offset + off, sizeof(sym));
        if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0 || sym.st_name >= strs.sh_size) continue;
        syms_.push_back({sym.st_value + bias_, std::max<uint64_t>(sym.st_size, 1),
                         std::string(f.data() + strs.sh_offset + sym.st_name)});
      }
    }
    std::sort(syms_.begin(), syms_.end(), [](const Sym& a, const Sym& b) { return a.addr < b.addr; });
  }
  const std::string* find(uint64_t addr) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), addr, [](uint64_t a, const Sym& s) { return a < s.addr; });
    if (it == syms_.begin()) return nullptr;
    --it;
    return addr < it->addr + it->size ? &it->name : nullptr;
  }

 private:
  struct Sym {
    uint64_t addr, size;
    std::string name;
  };
  uintptr_t bias_ = 0;
  std::vector<Sym> syms_;
};

std::string symbolize(const ExeSymbols& exe, uint64_t addr, std::map<uint64_t, std::string>& cache) {
  auto it = cache.find(addr);
  if (it != cache.end()) return it->second;
  std::string name;
  if (const std::string* s = exe.find(addr)) {
    name = demangle(s->c_str());
  } else {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(addr), &info) && info.dli_sname) {
      name = demangle(info.dli_sname);
    } else if (info.dli_fname) {
      const char* base = std::strrchr(info.dli_fname, '/');
      name = fmt::format("[{}]", base ? base + 1 : info.dli_fname);
    } else {
      name = fmt::format("0x{:x}", addr);
    }
  }
  cache[addr] = name;
  return name;
}

}  // namespace

bool sampling() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_state != nullptr;
}

void start_sampling(int hz) {
  std::lock_guard<std::mutex> lock(g_mutex);
  LOOM_CHECK(!g_state, "sampler: already running");
  LOOM_CHECK(hz >= 1 && hz <= 10000, "sampler: rate {} Hz outside 1..10000", hz);
  auto st = std::make_unique<State>();
  st->hz = hz;
  const char* mech = std::getenv("LOOM_SAMPLER");
  st->use_perf = !(mech && std::string(mech) == "timer");  // LOOM_SAMPLER=timer forces the fallback
  st->active.store(&st->buffers[0]);
  auto m = read_mappings();
  st->maps.store(m.get());
  st->all_maps.push_back(std::move(m));
  struct sigaction sa {};
  sa.sa_sigaction = on_sigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  LOOM_CHECK(sigaction(SIGPROF, &sa, &st->old_action) == 0, "sampler: cannot install the SIGPROF handler: {}",
             std::strerror(errno));
  // Probe: can this system create a thread CPU-time timer at all?
  timer_t probe;
  sigevent sev{};
  sev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &probe) != 0) {
    sigaction(SIGPROF, &st->old_action, nullptr);
    LOOM_THROW("sampler: CPU-time timers unavailable here ({})", std::strerror(errno));
  }
  timer_delete(probe);
  g_handler_state.store(st.get(), std::memory_order_release);
  st->t0 = std::chrono::steady_clock::now();
  State* raw = st.get();
  st->helper = std::thread(helper_loop, raw);
  g_state = st.release();
}

SampleProfile stop_sampling() {
  std::lock_guard<std::mutex> lock(g_mutex);
  LOOM_CHECK(g_state, "sampler: not running");
  std::unique_ptr<State> st(g_state);
  g_state = nullptr;
  st->stop.store(true);
  st->helper.join();
  for (auto& [tid, timer] : st->timers) timer_delete(timer);
  for (auto& [tid, fd] : st->perf_fds) {
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    close(fd);
  }
  // Signals already queued may still arrive: keep the handler state until they are handled.
  swap_and_drain(*st);
  g_handler_state.store(nullptr, std::memory_order_release);
  while (st->in_flight.load() != 0) std::this_thread::yield();
  swap_and_drain(*st);
  sigaction(SIGPROF, &st->old_action, nullptr);

  SampleProfile p;
  p.hz = st->hz;
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - st->t0).count();
  p.samples = st->samples;
  p.dropped = st->dropped;
  p.mechanism = !st->perf_fds.empty() ? "perf_event task-clock (high resolution)"
                                       : "POSIX thread CPU-time timers (fire on scheduler ticks: at most CONFIG_HZ/s)";
  ExeSymbols exe;
  std::map<uint64_t, std::string> cache;
  for (const auto& [key, count] : st->raw) {
    const int tid = static_cast<int>(key[0]);
    std::vector<std::string> frames;
    auto name = st->thread_names.find(tid);
    frames.push_back(name != st->thread_names.end() ? name->second : fmt::format("thread {}", tid));
    // key[1] is the interrupted pc; the rest are return addresses (look up the call site).
    for (size_t i = key.size() - 1; i >= 1; --i) frames.push_back(symbolize(exe, i == 1 ? key[i] : key[i] - 1, cache));
    p.stacks[frames] += count;
  }
  return p;
}

// ---- outputs -------------------------------------------------------------------------------

std::string SampleProfile::folded() const {
  std::string out;
  for (const auto& [frames, count] : stacks) {
    for (size_t i = 0; i < frames.size(); ++i) {
      if (i) out += ';';
      for (char c : frames[i]) out += (c == ';' || c == '\n') ? '_' : c;  // the format's separators
    }
    out += fmt::format(" {}\n", count);
  }
  return out;
}

SampleProfile parse_folded(const std::string& text, const std::string& what) {
  SampleProfile p;
  std::stringstream ss(text);
  std::string line;
  int line_no = 0;
  while (std::getline(ss, line)) {
    ++line_no;
    if (line.empty()) continue;
    const size_t sp = line.rfind(' ');
    LOOM_CHECK(sp != std::string::npos && sp > 0, "{}:{}: expected 'frames count'", what, line_no);
    char* end = nullptr;
    const long long count = std::strtoll(line.c_str() + sp + 1, &end, 10);
    LOOM_CHECK(*end == '\0' && count >= 0, "{}:{}: bad count '{}'", what, line_no, line.substr(sp + 1));
    std::vector<std::string> frames;
    std::stringstream fs(line.substr(0, sp));
    std::string f;
    while (std::getline(fs, f, ';')) frames.push_back(f);
    p.stacks[frames] += count;
    p.samples += count;
  }
  return p;
}

int64_t SampleProfile::samples_in(const std::string& function) const {
  int64_t n = 0;
  for (const auto& [frames, count] : stacks)
    for (size_t i = 1; i < frames.size(); ++i)
      if (frames[i].find(function) != std::string::npos) {
        n += count;
        break;
      }
  return n;
}

std::string SampleProfile::top_table(int n) const {
  std::map<std::string, int64_t> self, cum;
  int64_t total = 0;
  for (const auto& [frames, count] : stacks) {
    total += count;
    if (frames.size() > 1) self[frames.back()] += count;
    std::set<std::string> seen(frames.begin() + 1, frames.end());
    for (const auto& f : seen) cum[f] += count;
  }
  auto top = [&](const std::map<std::string, int64_t>& m) {
    std::vector<std::pair<int64_t, std::string>> v;
    for (const auto& [k, c] : m) v.push_back({c, k});
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    if (static_cast<int>(v.size()) > n) v.resize(n);
    return v;
  };
  std::string out = fmt::format("{} samples ({} dropped) at {} Hz per CPU-second over {:.1f} s{}\n", samples, dropped,
                                hz, seconds, mechanism.empty() ? "" : "; " + mechanism);
  out += fmt::format("\n{:>8} {:>7}  {}\n", "self", "self%", "function (flat: samples where it is the leaf)");
  for (const auto& [c, f] : top(self))
    out += fmt::format("{:>8} {:>6.2f}%  {}\n", c, total ? 100.0 * c / total : 0.0, f);
  out += fmt::format("\n{:>8} {:>7}  {}\n", "cum", "cum%", "function (cumulative: samples with it on the stack)");
  for (const auto& [c, f] : top(cum))
    out += fmt::format("{:>8} {:>6.2f}%  {}\n", c, total ? 100.0 * c / total : 0.0, f);
  return out;
}

namespace {

struct FlameNode {
  std::string name;
  int64_t count = 0;
  std::map<std::string, std::unique_ptr<FlameNode>> children;
};

void xml_escape(std::string& out, const std::string& s) {
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
}

}  // namespace

std::string SampleProfile::flamegraph_svg(const std::string& title) const {
  FlameNode root;
  root.name = "all";
  int depth_max = 0;
  for (const auto& [frames, count] : stacks) {
    FlameNode* node = &root;
    root.count += count;
    for (const auto& f : frames) {
      auto& child = node->children[f];
      if (!child) {
        child = std::make_unique<FlameNode>();
        child->name = f;
      }
      child->count += count;
      node = child.get();
    }
    depth_max = std::max<int>(depth_max, static_cast<int>(frames.size()));
  }
  const double width = 1200, row = 16, top = 40;
  const double height = top + row * (depth_max + 1) + 10;
  std::string out = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="monospace" font-size="11">)"
      "\n<rect width=\"100%\" height=\"100%\" fill=\"#fdfdf6\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\">",
      width, height);
  xml_escape(out, title);
  out += fmt::format(" ({} samples; width = share of CPU samples, bottom = thread, top = leaf)</text>\n", root.count);
  if (root.count == 0) return out + "</svg>\n";
  // Depth-first layout: each node spans its share of its parent's width, children sorted by name.
  struct Item {
    const FlameNode* node;
    double x;
    int depth;
  };
  std::vector<Item> stack{{&root, 10.0, 0}};
  const double scale = (width - 20) / static_cast<double>(root.count);
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    const double w = it.node->count * scale;
    const double y = height - 10 - row * (it.depth + 1);
    size_t h = std::hash<std::string>()(it.node->name);
    const int r = 205 + static_cast<int>(h % 50), g = 80 + static_cast<int>((h >> 8) % 120), b = static_cast<int>((h >> 16) % 60);
    out += "<g><title>";
    xml_escape(out, it.node->name);
    out += fmt::format(R"svg( ({} samples, {:.2f}%)</title><rect x="{:.2f}" y="{:.1f}" width="{:.2f}" height="{}" fill="rgb({},{},{})" rx="2"/>)svg",
                       it.node->count, 100.0 * it.node->count / root.count, it.x, y, std::max(w - 0.5, 0.1), row - 1, r, g, b);
    const int chars = static_cast<int>(w / 6.6);
    if (chars >= 3) {
      std::string label = it.node->name;
      if (static_cast<int>(label.size()) > chars) label = label.substr(0, chars - 2) + "..";
      out += fmt::format(R"(<text x="{:.2f}" y="{:.1f}">)", it.x + 3, y + row - 4);
      xml_escape(out, label);
      out += "</text>";
    }
    out += "</g>\n";
    double cx = it.x;
    for (const auto& [name, child] : it.node->children) {
      stack.push_back({child.get(), cx, it.depth + 1});
      cx += child->count * scale;
    }
  }
  return out + "</svg>\n";
}

std::string write_profile(const SampleProfile& p, const std::string& path) {
  {
    std::ofstream out(path);
    LOOM_CHECK(out.good(), "cannot write {}", path);
    out << p.folded();
    LOOM_CHECK(out.good(), "error writing {}", path);
  }
  std::string svg = path;
  const size_t dot = svg.rfind('.');
  svg = (dot != std::string::npos && svg.find('/', dot) == std::string::npos ? svg.substr(0, dot) : svg) + ".svg";
  std::ofstream out(svg);
  LOOM_CHECK(out.good(), "cannot write {}", svg);
  out << p.flamegraph_svg();
  return svg;
}

}  // namespace loom::profile
