#include "loom/base/error.h"

#include <cstring>

namespace loom {

void throw_error(const char* file, int line, const std::string& msg) {
  // Keep only the path below the repository root so messages are stable across checkouts.
  const char* rel = std::strstr(file, "loom/");
  throw Error(fmt::format("{} [{}:{}]", msg, rel ? rel : file, line));
}

}  // namespace loom
