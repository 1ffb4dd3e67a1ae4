#include "loom/base/file.h"

#include <fstream>
#include <sstream>

#include "loom/base/error.h"

namespace loom {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), "cannot open {}", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  LOOM_CHECK(!in.bad(), "error reading {}", path);
  return ss.str();
}

}  // namespace loom
