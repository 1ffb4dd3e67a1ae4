// Checkpoints in the safetensors format, readable by the Python `safetensors` library and
// PyTorch users: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the raw little-endian tensor bytes.
// Loading validates everything (header size, JSON, dtypes, shapes against offsets, offsets
// inside the file and non-overlapping) and throws loom::Error naming the file and field.
#pragma once

#include <map>
#include <string>

#include "loom/tensor/tensor.h"

namespace loom::nn {

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
std::map<std::string, Tensor> load_safetensors(const std::string& path,
                                               std::map<std::string, std::string>* metadata = nullptr);
// The same from/to memory (used by the file functions and by fuzz tests).
std::string encode_safetensors(const std::map<std::string, Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata = {});
std::map<std::string, Tensor> decode_safetensors(const std::string& bytes, const std::string& what,
                                                 std::map<std::string, std::string>* metadata = nullptr);

}  // namespace loom::nn
