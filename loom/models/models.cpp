#include "loom/models/models.h"

#include "loom/base/error.h"

namespace loom::models {

using namespace loom::nn;

std::vector<std::string> names() { return {"mlp", "cnn"}; }

nn::ModulePtr make(const std::string& name) {
  if (name == "mlp") {
    return std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
        std::make_shared<Flatten>(), std::make_shared<Linear>(784, 256), std::make_shared<ReLU>(),
        std::make_shared<Linear>(256, 128), std::make_shared<ReLU>(), std::make_shared<Linear>(128, 10)});
  }
  if (name == "cnn") {
    return std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
        std::make_shared<Conv2d>(1, 32, 3, 1, 1), std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
        std::make_shared<Conv2d>(32, 64, 3, 1, 1), std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
        std::make_shared<Flatten>(), std::make_shared<Linear>(3136, 128), std::make_shared<ReLU>(),
        std::make_shared<Linear>(128, 10)});
  }
  LOOM_THROW("unknown model '{}' (known: mlp, cnn)", name);
}

}  // namespace loom::models
