// Whole-file reads shared by every loader (models, traces, datasets, checkpoints).
#pragma once

#include <string>

namespace loom {

// The bytes of `path`; throws loom::Error "cannot open <path>" when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace loom
