#include "loom/data/array_io.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "loom/base/error.h"
#include "loom/base/file.h"
#include "loom/ops/ops.h"

namespace loom::data {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The value of `key` in the header dict: the text after "'key':" up to the next ',' at depth 0.
std::string header_value(const std::string& h, const std::string& key, const std::string& what) {
  const size_t k = h.find("'" + key + "'");
  LOOM_CHECK(k != std::string::npos, "{}: .npy header lacks '{}': {}", what, key, h);
  size_t p = h.find(':', k);
  LOOM_CHECK(p != std::string::npos, "{}: malformed .npy header: {}", what, h);
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  size_t e = p;
  int depth = 0;
  while (e < h.size() && !(depth == 0 && (h[e] == ',' || h[e] == '}'))) {
    if (h[e] == '(') ++depth;
    if (h[e] == ')') --depth;
    ++e;
  }
  return h.substr(p, e - p);
}

}  // namespace

Tensor parse_npy(const std::string& b, const std::string& what) {
  LOOM_CHECK(b.size() >= 10 && std::memcmp(b.data(), "\x93NUMPY", 6) == 0, "{}: not a .npy file (bad magic)", what);
  const int major = static_cast<unsigned char>(b[6]);
  LOOM_CHECK(major >= 1 && major <= 3, "{}: unsupported .npy version {}", what, major);
  size_t hlen, hoff;
  if (major == 1) {
    hlen = static_cast<unsigned char>(b[8]) | (static_cast<size_t>(static_cast<unsigned char>(b[9])) << 8);
    hoff = 10;
  } else {
    LOOM_CHECK(b.size() >= 12, "{}: truncated .npy header", what);
    hlen = 0;
    for (int i = 0; i < 4; ++i) hlen |= static_cast<size_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
    hoff = 12;
  }
  LOOM_CHECK(hoff + hlen <= b.size(), "{}: truncated .npy header ({} bytes declared)", what, hlen);
  const std::string h = b.substr(hoff, hlen);
  std::string descr = header_value(h, "descr", what);
  const std::string fortran = header_value(h, "fortran_order", what);
  std::string shape_s = header_value(h, "shape", what);
  LOOM_CHECK(descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"'), "{}: bad descr {}", what, descr);
  descr = descr.substr(1, descr.size() - 2);
  DType dtype;
  if (descr == "<f4") dtype = DType::kF32;
  else if (descr == "<f8") dtype = DType::kF64;
  else if (descr == "<i4") dtype = DType::kI32;
  else if (descr == "<i8") dtype = DType::kI64;
  else LOOM_THROW("{}: unsupported .npy dtype '{}' (<f4, <f8, <i4, <i8)", what, descr);
  LOOM_CHECK(fortran == "False" || fortran == "True", "{}: bad fortran_order {}", what, fortran);
  LOOM_CHECK(shape_s.size() >= 2 && shape_s.front() == '(' && shape_s.back() == ')', "{}: bad shape {}", what, shape_s);
  Shape shape;
  uint64_t count = 1;
  std::stringstream ss(shape_s.substr(1, shape_s.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    LOOM_CHECK(end != item.c_str() && v >= 0 && v < (1ll << 40), "{}: bad dimension '{}' in shape {}", what, item,
               shape_s);
    shape.push_back(v);
    count *= static_cast<uint64_t>(v);
    LOOM_CHECK(count < (uint64_t{1} << 36), "{}: shape {} too large", what, shape_s);
  }
  const size_t bytes = count * dtype_size(dtype);
  LOOM_CHECK(b.size() - hoff - hlen == bytes, "{}: {} data bytes for shape {} of {} (expected {})", what,
             b.size() - hoff - hlen, shape_s, descr, bytes);
  if (fortran == "False" || shape.size() < 2) return Tensor::from_data(b.data() + hoff + hlen, shape, dtype);
  // Fortran order: the data is the transpose in C order.
  Shape rev(shape.rbegin(), shape.rend());
  std::vector<int64_t> dims(shape.size());
  for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(dims.size() - 1 - i);
  return permute(Tensor::from_data(b.data() + hoff + hlen, rev, dtype), dims).contiguous();
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  switch (t.dtype()) {
    case DType::kF32: descr = "<f4"; break;
    case DType::kF64: descr = "<f8"; break;
    case DType::kI32: descr = "<i4"; break;
    case DType::kI64: descr = "<i8"; break;
    default: LOOM_THROW("write_npy {}: unsupported dtype {}", path, dtype_name(t.dtype()));
  }
  std::string shape = "(";
  for (int64_t d : t.shape()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  else if (t.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  // Pad so that the data starts on a 64-byte boundary, newline-terminated (format 1.0).
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  Tensor c = t.contiguous();
  std::ofstream out(path, std::ios::binary);
  LOOM_CHECK(out.good(), "cannot write {}", path);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(hl & 0xff), static_cast<char>(hl >> 8)};
  out.write(len, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.nbytes()));
  LOOM_CHECK(out.good(), "error writing {}", path);
}

Tensor parse_csv(const std::string& text, const std::string& what) {
  std::vector<float> values;
  int64_t cols = -1, rows = 0, line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<float> row;
    bool numeric = true;
    size_t p = 0;
    std::string bad;
    while (true) {
      size_t comma = line.find(',', p);
      std::string f = line.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
      const size_t a = f.find_first_not_of(" \t"), z = f.find_last_not_of(" \t");
      f = a == std::string::npos ? "" : f.substr(a, z - a + 1);
      if (f.empty() || f == "nan" || f == "NaN" || f == "NA" || f == "NAN") {
        row.push_back(NAN);
      } else {
        char* end = nullptr;
        const float v = std::strtof(f.c_str(), &end);
        if (end != f.c_str() + f.size()) {
          numeric = false;
          if (bad.empty()) bad = fmt::format("column {} '{}'", row.size() + 1, f);
        }
        row.push_back(v);
      }
      if (comma == std::string::npos) break;
      p = comma + 1;
    }
    if (!numeric) {
      LOOM_CHECK(rows == 0 && cols == -1, "{}:{}: not a number: {}", what, line_no, bad);
      cols = static_cast<int64_t>(row.size());  // header line
      continue;
    }
    if (cols == -1) cols = static_cast<int64_t>(row.size());
    LOOM_CHECK(static_cast<int64_t>(row.size()) == cols, "{}:{}: {} columns, expected {}", what, line_no, row.size(),
               cols);
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  LOOM_CHECK(rows > 0, "{}: no data rows", what);
  return Tensor::from_vector(values, {rows, cols});
}

Tensor read_csv(const std::string& path) { return parse_csv(read_file(path), path); }

void write_csv(const std::string& path, const Tensor& t) {
  LOOM_CHECK(t.dim() == 1 || t.dim() == 2, "write_csv {}: tensor of shape {} (1-D or 2-D)", path,
             shape_str(t.shape()));
  const int64_t rows = t.size(0), cols = t.dim() == 2 ? t.size(1) : 1;
  std::vector<double> v = t.to_vector<double>();
  std::unique_ptr<FILE, int (*)(FILE*)> owned(nullptr, fclose);
  FILE* f = stdout;
  if (path != "-") {
    owned.reset(std::fopen(path.c_str(), "w"));
    LOOM_CHECK(owned, "cannot write {}", path);
    f = owned.get();
  }
  std::string line;
  for (int64_t r = 0; r < rows; ++r) {
    line.clear();
    for (int64_t c = 0; c < cols; ++c) {
      if (c) line += ',';
      line += fmt::format("{:.9g}", v[r * cols + c]);
    }
    line += '\n';
    LOOM_CHECK(std::fwrite(line.data(), 1, line.size(), f) == line.size(), "error writing {}", path);
  }
  LOOM_CHECK(std::fflush(f) == 0, "error writing {}", path);
}

Tensor read_array(const std::string& path) { return ends_with(path, ".npy") ? read_npy(path) : read_csv(path); }

void write_array(const std::string& path, const Tensor& t) {
  if (ends_with(path, ".npy")) {
    write_npy(path, t);
  } else {
    write_csv(path, t);
  }
}

}  // namespace loom::data
