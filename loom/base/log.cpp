#include "loom/base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace loom {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("LOOM_LOG");
  if (!env) return LogLevel::kWarn;
  if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(env, "info")) return LogLevel::kInfo;
  if (!std::strcmp(env, "error")) return LogLevel::kError;
  if (!std::strcmp(env, "off")) return LogLevel::kOff;
  return LogLevel::kWarn;
}

std::atomic<LogLevel>& level_ref() {
  static std::atomic<LogLevel> level{initial_level()};
  return level;
}

}  // namespace

LogLevel log_level() { return level_ref().load(std::memory_order_relaxed); }
void set_log_level(LogLevel level) { level_ref().store(level); }

void log_message(LogLevel level, const std::string& msg) {
  static const char* names[] = {"debug", "info", "warn", "error", "off"};
  std::string line = fmt::format("[loom {}] {}\n", names[static_cast<int>(level)], msg);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace loom
