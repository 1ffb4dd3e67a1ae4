// loom/base: the bottom layer every module stands on -- errors, logging, the thread pool,
// CPU feature detection, a counter-based RNG and clocks.
//
// Errors: every user-facing failure throws loom::Error whose message names the operation
// and the offending values (op, shapes, file, field). LOOM_CHECK guards invariants and
// user input alike; it never aborts, so a CLI or a server can report the failure and go on.
#pragma once

#include <fmt/core.h>

#include <stdexcept>
#include <string>

namespace loom {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

}  // namespace loom

// Throws loom::Error with a fmt-formatted message: LOOM_THROW("add: shapes {} and {}", a, b).
#define LOOM_THROW(...) ::loom::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))

// Checks a condition; on failure throws loom::Error naming the condition and the message.
#define LOOM_CHECK(cond, ...)                                                      \
  do {                                                                             \
    if (!(cond)) [[unlikely]] {                                                    \
      ::loom::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__));         \
    }                                                                              \
  } while (0)
