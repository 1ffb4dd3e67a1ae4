// Minimal leveled logging to stderr. Thread-safe (one write per message).
#pragma once

#include <fmt/core.h>

#include <string>

namespace loom {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_message(LogLevel level, const std::string& msg);

}  // namespace loom

#define LOOM_LOG(level, ...)                                              \
  do {                                                                    \
    if (::loom::LogLevel::level >= ::loom::log_level())                   \
      ::loom::log_message(::loom::LogLevel::level, ::fmt::format(__VA_ARGS__)); \
  } while (0)
