#include "loom/data/idx.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "loom/base/error.h"
#include "loom/base/file.h"

namespace loom::data {

std::string read_maybe_gzip(const std::string& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  z_stream zs{};
  LOOM_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "{}: zlib init failed", path);
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      LOOM_THROW("{}: corrupt gzip data ({})", path, zs.msg ? zs.msg : "inflate failed");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    LOOM_CHECK(out.size() < (size_t{4} << 30), "{}: decompressed size exceeds 4 GiB", path);
  } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  LOOM_CHECK(rc == Z_STREAM_END, "{}: truncated gzip stream", path);
  return out;
}

Tensor parse_idx(const std::string& b, const std::string& what) {
  LOOM_CHECK(b.size() >= 4, "{}: not an IDX file ({} bytes)", what, b.size());
  const auto u8 = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
  LOOM_CHECK(u8(0) == 0 && u8(1) == 0, "{}: bad IDX magic (first bytes {:02x} {:02x})", what, u8(0), u8(1));
  const int type = u8(2), nd = u8(3);
  LOOM_CHECK(nd >= 1 && nd <= 8, "{}: IDX rank {} out of range", what, nd);
  LOOM_CHECK(b.size() >= 4 + 4 * static_cast<size_t>(nd), "{}: truncated IDX header", what);
  Shape shape;
  uint64_t count = 1;
  for (int d = 0; d < nd; ++d) {
    size_t o = 4 + 4 * d;
    uint64_t v = (uint64_t(u8(o)) << 24) | (uint64_t(u8(o + 1)) << 16) | (uint64_t(u8(o + 2)) << 8) | u8(o + 3);
    LOOM_CHECK(v < (uint64_t{1} << 31), "{}: dimension {} is {}", what, d, v);
    shape.push_back(static_cast<int64_t>(v));
    count *= v;
    LOOM_CHECK(count < (uint64_t{1} << 36), "{}: IDX shape too large", what);
  }
  size_t elem;
  switch (type) {
    case 0x08: case 0x09: elem = 1; break;
    case 0x0C: case 0x0D: elem = 4; break;
    case 0x0E: elem = 8; break;
    default: LOOM_THROW("{}: unsupported IDX element type 0x{:02x} (int16 and unknown types)", what, type);
  }
  const size_t off = 4 + 4 * static_cast<size_t>(nd);
  LOOM_CHECK(b.size() - off == count * elem, "{}: {} data bytes for shape {} (expected {})", what, b.size() - off,
             shape_str(shape), count * elem);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(b.data() + off);
  auto be32 = [&](uint64_t i) {
    return (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) | p[4 * i + 3];
  };
  if (type == 0x08 || type == 0x09) {
    if (nd == 1) {
      Tensor t = Tensor::empty(shape, DType::kI64);
      int64_t* d = t.data<int64_t>();
      for (uint64_t i = 0; i < count; ++i) d[i] = type == 0x08 ? p[i] : static_cast<int8_t>(p[i]);
      return t;
    }
    Tensor t = Tensor::empty(shape, DType::kF32);
    float* d = t.data<float>();
    for (uint64_t i = 0; i < count; ++i) d[i] = type == 0x08 ? p[i] : static_cast<int8_t>(p[i]);
    return t;
  }
  if (type == 0x0C) {
    Tensor t = Tensor::empty(shape, DType::kI32);
    int32_t* d = t.data<int32_t>();
    for (uint64_t i = 0; i < count; ++i) d[i] = static_cast<int32_t>(be32(i));
    return t;
  }
  if (type == 0x0D) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    float* d = t.data<float>();
    for (uint64_t i = 0; i < count; ++i) {
      uint32_t v = be32(i);
      std::memcpy(&d[i], &v, 4);
    }
    return t;
  }
  Tensor t = Tensor::empty(shape, DType::kF64);
  double* d = t.data<double>();
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t v = (uint64_t(be32(2 * i)) << 32) | be32(2 * i + 1);
    std::memcpy(&d[i], &v, 8);
  }
  return t;
}

Tensor read_idx(const std::string& path) { return parse_idx(read_maybe_gzip(path), path); }

}  // namespace loom::data
