// loom/models: named model definitions.
//   mlp: 784-256-128-10 with ReLU (input flattened).
//   cnn: conv 1->32 3x3 pad 1, ReLU, maxpool 2; conv 32->64 3x3 pad 1, ReLU, maxpool 2;
//        linear 3136->128, ReLU; linear 128->10.
#pragma once

#include <string>
#include <vector>

#include "loom/nn/layers.h"

namespace loom::models {

// Throws naming the known models when `name` is not one of them.
nn::ModulePtr make(const std::string& name);
std::vector<std::string> names();

}  // namespace loom::models
