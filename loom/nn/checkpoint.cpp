#include "loom/nn/checkpoint.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/base/error.h"
#include "loom/base/file.h"

namespace loom::nn {
namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF64: return "F64";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::kF32}, {"F64", DType::kF64}, {"I32", DType::kI32}, {"I64", DType::kI64}, {"BOOL", DType::kBool}};
  for (auto& [n, t] : table)
    if (s == n) return out = t, true;
  return false;
}

}  // namespace

std::string encode_safetensors(const std::map<std::string, Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    LOOM_CHECK(t.defined(), "save_safetensors: tensor '{}' is undefined", name);
    LOOM_CHECK(name != "__metadata__", "save_safetensors: '__metadata__' is a reserved name");
    uint64_t n = t.nbytes();
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as the reference writer does
  std::string out(8, '\0');
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out += h;
  for (const auto& [name, t] : tensors) {
    Tensor c = t.contiguous();
    out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  return out;
}

std::map<std::string, Tensor> decode_safetensors(const std::string& bytes, const std::string& what,
                                                 std::map<std::string, std::string>* metadata) {
  LOOM_CHECK(bytes.size() >= 8, "{}: not a safetensors file ({} bytes, need at least 8)", what, bytes.size());
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  LOOM_CHECK(len <= bytes.size() - 8 && len <= (uint64_t{100} << 20),
             "{}: header length {} exceeds the file ({} bytes) or the 100 MiB limit", what, len, bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(len));
  } catch (const nlohmann::json::exception& e) {
    LOOM_THROW("{}: header is not valid JSON: {}", what, e.what());
  }
  LOOM_CHECK(header.is_object(), "{}: header must be a JSON object", what);
  const uint64_t data_size = bytes.size() - 8 - len;
  const char* data = bytes.data() + 8 + len;
  std::map<std::string, Tensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      LOOM_CHECK(entry.is_object(), "{}: __metadata__ must be an object", what);
      if (metadata)
        for (const auto& [k, v] : entry.items()) {
          LOOM_CHECK(v.is_string(), "{}: __metadata__.{} must be a string", what, k);
          (*metadata)[k] = v.get<std::string>();
        }
      continue;
    }
    LOOM_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                   entry.contains("data_offsets"),
               "{}: entry '{}' needs dtype, shape and data_offsets", what, name);
    DType dt;
    LOOM_CHECK(entry["dtype"].is_string() && parse_dtype(entry["dtype"].get<std::string>(), dt),
               "{}: entry '{}' has unsupported dtype {}", what, name, entry["dtype"].dump());
    Shape shape;
    LOOM_CHECK(entry["shape"].is_array(), "{}: entry '{}': shape must be an array", what, name);
    uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      LOOM_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (uint64_t{1} << 40),
                 "{}: entry '{}': bad dimension {}", what, name, d.dump());
      shape.push_back(d.get<int64_t>());
      count *= d.get<uint64_t>();
      LOOM_CHECK(count < (uint64_t{1} << 40), "{}: entry '{}': shape too large", what, name);
    }
    const auto& off = entry["data_offsets"];
    LOOM_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
               "{}: entry '{}': data_offsets must be [begin, end]", what, name);
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    LOOM_CHECK(b <= e && e <= data_size, "{}: entry '{}': data_offsets [{}, {}] outside the {}-byte data section",
               what, name, b, e, data_size);
    LOOM_CHECK(e - b == count * dtype_size(dt), "{}: entry '{}': {} bytes for shape {} of {} (expected {})", what,
               name, e - b, shape_str(shape), dtype_name(dt), count * dtype_size(dt));
    ranges.emplace_back(b, e);
    Tensor t = Tensor::empty(shape, dt);
    if (e > b) std::memcpy(t.raw_data(), data + b, e - b);
    if (dt == DType::kBool) {
      bool ok = true;
      for (uint64_t i = 0; i < count; ++i) ok &= static_cast<unsigned char>(data[b + i]) <= 1;
      LOOM_CHECK(ok, "{}: entry '{}': BOOL data holds bytes other than 0 and 1", what, name);
    }
    out[name] = t;
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    LOOM_CHECK(ranges[i].first >= ranges[i - 1].second, "{}: tensor data ranges overlap", what);
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::string bytes = encode_safetensors(tensors, metadata);
  // Write to a temporary file and rename, so a crash never leaves a truncated checkpoint.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    LOOM_CHECK(out.good(), "save_safetensors: cannot open {} for writing", tmp);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    LOOM_CHECK(out.good(), "save_safetensors: write to {} failed", tmp);
  }
  LOOM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "save_safetensors: cannot rename {} to {}", tmp, path);
}

std::map<std::string, Tensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  return decode_safetensors(read_file(path), path, metadata);
}

}  // namespace loom::nn
