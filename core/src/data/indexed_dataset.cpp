#include "tessera/data/indexed_dataset.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <type_traits>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"

namespace tessera {

namespace {

// The index's arrays are unaligned (sizes start at byte 34), so every load goes through memcpy;
// compilers turn this into one unaligned load on x86 and arm64.
template <typename T>
T load(const unsigned char* base, std::int64_t i) {
  T v;
  std::memcpy(&v, base + i * static_cast<std::int64_t>(sizeof(T)), sizeof(T));
  return v;
}

template <typename T>
void append_le(std::vector<unsigned char>& out, T v) {
  static_assert(std::endian::native == std::endian::little, "the MMIDIDX format is little-endian");
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

bool known_token_dtype(std::uint8_t code) {
  return code == 1 || code == 2 || code == 3 || code == 4 || code == 5 || code == 8;
}

// Index of the first element of src[0, n) that is not a token id (negative, or past int32), or -1.
// Token ids are non-negative int32 values; an int64 2^32 + 65 must not be narrowed to 65.
template <typename T>
std::int64_t first_bad_token(const unsigned char* src, std::int64_t n) {
  if constexpr (std::is_unsigned_v<T> && sizeof(T) < sizeof(std::int32_t)) {
    return -1;
  } else {
    for (std::int64_t k = 0; k < n; ++k) {
      T v;
      std::memcpy(&v, src + k * static_cast<std::int64_t>(sizeof(T)), sizeof v);  // .bin data is unaligned
      if (v < 0 || static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
        return k;
    }
    return -1;
  }
}

template <typename T>
void convert(const void* src, std::int64_t n, std::int32_t* out) {
  const auto* s = static_cast<const unsigned char*>(src);
  for (std::int64_t k = 0; k < n; ++k) {
    T v;
    std::memcpy(&v, s + k * static_cast<std::int64_t>(sizeof(T)), sizeof v);
    out[k] = static_cast<std::int32_t>(v);
  }
}

// A name next to `path` that no other writer uses: <path>.tmp.<pid>.<n>. Created with O_EXCL and
// mode 0666 (less the umask), as fopen would create the file itself.
int create_temporary(const std::string& path, std::string& tmp_out) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_out = fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), counter++);
    const int fd = ::open(tmp_out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) throw FormatError(fmt::format("{}: cannot create: {}", tmp_out, std::strerror(errno)));
  }
  throw FormatError(fmt::format("{}: cannot create a temporary file next to it (100 names taken)", path));
}

}  // namespace

std::size_t index_dtype_size(IndexDtype t) {
  switch (t) {
    case IndexDtype::u8: case IndexDtype::i8: return 1;
    case IndexDtype::i16: case IndexDtype::u16: return 2;
    case IndexDtype::i32: case IndexDtype::f32: return 4;
    case IndexDtype::i64: case IndexDtype::f64: return 8;
  }
  return 0;
}

const char* index_dtype_name(IndexDtype t) {
  switch (t) {
    case IndexDtype::u8: return "uint8";
    case IndexDtype::i8: return "int8";
    case IndexDtype::i16: return "int16";
    case IndexDtype::i32: return "int32";
    case IndexDtype::i64: return "int64";
    case IndexDtype::f32: return "float32";
    case IndexDtype::f64: return "float64";
    case IndexDtype::u16: return "uint16";
  }
  return "?";
}

IndexDtype index_dtype_for_vocab(std::int64_t vocab_size) {
  return vocab_size < 65500 ? IndexDtype::u16 : IndexDtype::i32;
}

template <typename T>
std::span<const T> SequenceView::as() const {
  constexpr IndexDtype want = std::is_same_v<T, std::uint8_t>    ? IndexDtype::u8
                              : std::is_same_v<T, std::int8_t>   ? IndexDtype::i8
                              : std::is_same_v<T, std::int16_t>  ? IndexDtype::i16
                              : std::is_same_v<T, std::int32_t>  ? IndexDtype::i32
                              : std::is_same_v<T, std::int64_t>  ? IndexDtype::i64
                              : IndexDtype::u16;
  if (dtype != want)
    throw Error(fmt::format("sequence holds {} tokens, asked for {}", index_dtype_name(dtype), index_dtype_name(want)));
  return {static_cast<const T*>(data), static_cast<std::size_t>(length)};
}
template std::span<const std::uint8_t> SequenceView::as() const;
template std::span<const std::int8_t> SequenceView::as() const;
template std::span<const std::int16_t> SequenceView::as() const;
template std::span<const std::int32_t> SequenceView::as() const;
template std::span<const std::int64_t> SequenceView::as() const;
template std::span<const std::uint16_t> SequenceView::as() const;

// ---------------------------------------------------------------------------------------------
// Reader

// A read-only mapping of a whole file (empty files are valid and map nothing).
struct IndexedDataset::Mapping {
  const unsigned char* data = nullptr;
  std::size_t size = 0;
  explicit Mapping(const std::string& path) {
    // O_NONBLOCK: a FIFO named as .idx or .bin must be refused, not wait for a writer for ever.
    std::uint64_t bytes = 0;
    int fd = open_regular_file(path, "indexed dataset file", &bytes);
    size = static_cast<std::size_t>(bytes);
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        throw FormatError(fmt::format("{}: cannot mmap {} bytes: {}", path, size, std::strerror(e)));
      }
      data = static_cast<const unsigned char*>(p);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
  }
  ~Mapping() {
    if (data) ::munmap(const_cast<unsigned char*>(data), size);
  }
};

IndexedDataset::IndexedDataset(const std::string& prefix)
    : idx_path_(prefix + ".idx"), bin_path_(prefix + ".bin") {
  idx_ = std::make_unique<Mapping>(idx_path_);
  bin_ = std::make_unique<Mapping>(bin_path_);
  validate();
}

IndexedDataset::~IndexedDataset() = default;

void IndexedDataset::validate() {
  const unsigned char* p = idx_->data;
  const std::size_t n_bytes = idx_->size;
  auto fail = [&](const std::string& what) { throw FormatError(fmt::format("{}: {}", idx_path_, what)); };
  if (n_bytes < kHeaderBytes)
    fail(fmt::format("truncated index: {} bytes, the header alone is {} bytes", n_bytes, kHeaderBytes));
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0)
    fail("bad magic: not a Megatron MMIDIDX index (expected the bytes \"MMIDIDX\\0\\0\")");
  const auto version = load<std::uint64_t>(p + 9, 0);
  if (version != kVersion) fail(fmt::format("unsupported version {} (only version {} exists)", version, kVersion));
  const std::uint8_t code = p[17];
  if (!known_token_dtype(code))
    fail(fmt::format("unknown or non-token dtype code {} (expected 1-5 or 8: uint8, int8, int16, int32, "
                     "int64, uint16)", code));
  dtype_ = static_cast<IndexDtype>(code);
  const auto n = load<std::uint64_t>(p + 18, 0);
  const auto d = load<std::uint64_t>(p + 26, 0);
  // 34 + 12N + 8D in 128 bits: a corrupt count cannot overflow the size check, and a truncated
  // file's message still gives the size its header implies.
  using u128 = unsigned __int128;
  const u128 expected = kHeaderBytes + static_cast<u128>(n) * 12 + static_cast<u128>(d) * 8;
  if (expected != n_bytes)
    fail(fmt::format("truncated or corrupt index: header says N={} sequences and D={} doc_idx entries, "
                     "so the file should be 34+12N+8D = {} bytes, but it is {} bytes",
                     n, d,
                     expected > UINT64_MAX ? std::string("more than 2^64")
                                           : std::to_string(static_cast<std::uint64_t>(expected)),
                     n_bytes));
  if (d < 1) fail("doc_idx is empty (it must start with 0)");
  num_sequences_ = static_cast<std::int64_t>(n);
  num_doc_idx_ = static_cast<std::int64_t>(d);
  sizes_ = p + kHeaderBytes;
  pointers_ = sizes_ + 4 * n;
  doc_idx_ = pointers_ + 8 * n;

  const std::int64_t item = static_cast<std::int64_t>(index_dtype_size(dtype_));
  const std::int64_t bin_size = static_cast<std::int64_t>(bin_->size);
  std::int64_t expect_ptr = 0;
  for (std::int64_t i = 0; i < num_sequences_; ++i) {
    const auto sz = load<std::int32_t>(sizes_, i);
    const auto ptr = load<std::int64_t>(pointers_, i);
    if (sz < 0) fail(fmt::format("sequence {} has negative size {}", i, sz));
    if (ptr != expect_ptr)
      fail(fmt::format("pointer of sequence {} is {} but the sizes before it put it at byte {}", i, ptr, expect_ptr));
    expect_ptr += sz * item;
    if (expect_ptr > bin_size)
      fail(fmt::format("sequence {} ends at byte {} but {} has only {} bytes (truncated .bin or mismatched pair)",
                       i, expect_ptr, bin_path_, bin_size));
  }
  if (expect_ptr != bin_size)
    fail(fmt::format("the index describes {} bytes of tokens but {} has {} bytes (mismatched .bin/.idx pair)",
                     expect_ptr, bin_path_, bin_size));
  total_tokens_ = expect_ptr / item;
  std::int64_t prev = 0;
  for (std::int64_t k = 0; k < num_doc_idx_; ++k) {
    const auto v = load<std::int64_t>(doc_idx_, k);
    if (k == 0 && v != 0) fail(fmt::format("doc_idx[0] is {}, it must be 0", v));
    if (v < prev) fail(fmt::format("doc_idx is not monotonic: doc_idx[{}] = {} < doc_idx[{}] = {}", k, v, k - 1, prev));
    if (v > num_sequences_) fail(fmt::format("doc_idx[{}] = {} exceeds the number of sequences {}", k, v, num_sequences_));
    prev = v;
  }
}

void IndexedDataset::check_index(std::int64_t i) const {
  if (i < 0 || i >= num_sequences_)
    throw Error(fmt::format("{}: sequence {} out of range [0, {})", idx_path_, i, num_sequences_));
}

std::int32_t IndexedDataset::sequence_length(std::int64_t i) const {
  check_index(i);
  return load<std::int32_t>(sizes_, i);
}

std::int64_t IndexedDataset::sequence_pointer(std::int64_t i) const {
  check_index(i);
  return load<std::int64_t>(pointers_, i);
}

std::int64_t IndexedDataset::document_index(std::int64_t k) const {
  if (k < 0 || k >= num_doc_idx_)
    throw Error(fmt::format("{}: doc_idx entry {} out of range [0, {})", idx_path_, k, num_doc_idx_));
  return load<std::int64_t>(doc_idx_, k);
}

std::vector<std::int64_t> IndexedDataset::document_index() const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(num_doc_idx_));
  std::memcpy(out.data(), doc_idx_, out.size() * 8);
  return out;
}

std::vector<std::int32_t> IndexedDataset::sizes() const {
  std::vector<std::int32_t> out(static_cast<std::size_t>(num_sequences_));
  if (!out.empty()) std::memcpy(out.data(), sizes_, out.size() * 4);
  return out;
}

SequenceView IndexedDataset::sequence(std::int64_t i) const {
  check_index(i);
  SequenceView v;
  v.dtype = dtype_;
  v.length = load<std::int32_t>(sizes_, i);
  v.data = bin_->data ? bin_->data + load<std::int64_t>(pointers_, i) : nullptr;
  return v;
}

void IndexedDataset::read(std::int64_t i, std::int64_t offset, std::int64_t length, std::int32_t* out) const {
  SequenceView v = sequence(i);
  if (offset < 0 || length < 0 || offset + length > v.length)
    throw Error(fmt::format("{}: tokens [{}, {}) out of range for sequence {} of {} tokens", idx_path_, offset,
                            offset + length, i, v.length));
  const auto* base = static_cast<const unsigned char*>(v.data) + offset * static_cast<std::int64_t>(index_dtype_size(dtype_));
  // Checked before narrowing: an id that is negative or past int32 is corrupt data, never a token.
  auto check = [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t k = first_bad_token<T>(base, length);
    if (k < 0) return;
    T bad;
    std::memcpy(&bad, base + k * static_cast<std::int64_t>(sizeof(T)), sizeof bad);
    throw FormatError(fmt::format("{}: token {} at position {} of sequence {} is not a token id (ids are "
                                  "non-negative and fit int32; dtype {}): corrupt data or not a token file",
                                  bin_path_, static_cast<std::int64_t>(bad), offset + k, i, index_dtype_name(dtype_)));
  };
  switch (dtype_) {
    case IndexDtype::u8: convert<std::uint8_t>(base, length, out); break;
    case IndexDtype::i8: check(std::int8_t{}); convert<std::int8_t>(base, length, out); break;
    case IndexDtype::i16: check(std::int16_t{}); convert<std::int16_t>(base, length, out); break;
    case IndexDtype::i32: check(std::int32_t{}); if (length) std::memcpy(out, base, static_cast<std::size_t>(length) * 4); break;
    case IndexDtype::i64: check(std::int64_t{}); convert<std::int64_t>(base, length, out); break;
    case IndexDtype::u16: convert<std::uint16_t>(base, length, out); break;
    default: throw Error(fmt::format("{}: dtype {} holds no tokens", idx_path_, index_dtype_name(dtype_)));
  }
}

std::vector<std::int32_t> IndexedDataset::sequence_int32(std::int64_t i) const {
  std::vector<std::int32_t> out(static_cast<std::size_t>(sequence_length(i)));
  read(i, 0, static_cast<std::int64_t>(out.size()), out.data());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

IndexedDatasetWriter::IndexedDatasetWriter(const std::string& prefix, IndexDtype dtype)
    : prefix_(prefix), dtype_(dtype) {
  if (!known_token_dtype(static_cast<std::uint8_t>(dtype)))
    throw Error(fmt::format("{}.bin: cannot write tokens as {}", prefix, index_dtype_name(dtype)));
  // Tokens go to a temporary file beside <prefix>.bin, renamed into place by finalize(): an existing
  // <prefix>.bin is never truncated, so a trainer that has it memory-mapped keeps reading a valid
  // file (truncating a mapped file kills its reader with SIGBUS), and a failed run leaves the old
  // dataset as it was.
  const int fd = create_temporary(prefix + ".bin", bin_tmp_);
  bin_ = ::fdopen(fd, "wb");
  if (!bin_) {
    const int e = errno;
    ::close(fd);
    std::remove(bin_tmp_.c_str());
    throw FormatError(fmt::format("{}: cannot open: {}", bin_tmp_, std::strerror(e)));
  }
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (bin_) std::fclose(bin_);
  if (!finalized_) discard();
}

void IndexedDatasetWriter::discard() {
  if (!bin_tmp_.empty()) std::remove(bin_tmp_.c_str());
  bin_tmp_.clear();
}

void IndexedDatasetWriter::add_sequence(std::span<const std::int32_t> tokens) {
  if (finalized_ || !bin_) throw Error(fmt::format("{}.bin: add_sequence after finalize", prefix_));
  if (tokens.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw Error(fmt::format("{}.bin: sequence of {} tokens exceeds the int32 size field", prefix_, tokens.size()));
  buffer_.clear();
  auto put = [&](auto tag) {
    using T = decltype(tag);
    for (std::int32_t t : tokens) {
      if (t < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          t > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        throw Error(fmt::format("{}.bin: token {} does not fit dtype {}", prefix_, t, index_dtype_name(dtype_)));
      append_le(buffer_, static_cast<T>(t));
    }
  };
  switch (dtype_) {
    case IndexDtype::u8: put(std::uint8_t{}); break;
    case IndexDtype::i8: put(std::int8_t{}); break;
    case IndexDtype::i16: put(std::int16_t{}); break;
    case IndexDtype::i32: put(std::int32_t{}); break;
    case IndexDtype::i64: put(std::int64_t{}); break;
    case IndexDtype::u16: put(std::uint16_t{}); break;
    default: break;
  }
  if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), bin_) != buffer_.size())
    throw FormatError(fmt::format("{}: write failed: {}", bin_tmp_, std::strerror(errno)));
  bin_bytes_ += static_cast<std::int64_t>(buffer_.size());
  sizes_.push_back(static_cast<std::int32_t>(tokens.size()));
}

void IndexedDatasetWriter::end_document() { doc_idx_.push_back(static_cast<std::int64_t>(sizes_.size())); }

void IndexedDatasetWriter::add_document(std::span<const std::int32_t> tokens) {
  add_sequence(tokens);
  end_document();
}

void IndexedDatasetWriter::merge(const std::string& other_prefix) {
  if (finalized_ || !bin_) throw Error(fmt::format("{}.bin: merge after finalize", prefix_));
  IndexedDataset other(other_prefix);
  if (other.dtype() != dtype_)
    throw FormatError(fmt::format("{}: dtype {} differs from {}'s dtype {}; cannot merge", other.idx_path(),
                                  index_dtype_name(other.dtype()), prefix_, index_dtype_name(dtype_)));
  const auto offset = static_cast<std::int64_t>(sizes_.size());
  auto other_sizes = other.sizes();
  sizes_.insert(sizes_.end(), other_sizes.begin(), other_sizes.end());
  auto other_doc = other.document_index();
  for (std::size_t k = 1; k < other_doc.size(); ++k) doc_idx_.push_back(other_doc[k] + offset);
  const std::int64_t bytes = other.total_tokens() * static_cast<std::int64_t>(index_dtype_size(dtype_));
  if (bytes > 0) {
    const void* data = other.sequence(0).data;
    if (std::fwrite(data, 1, static_cast<std::size_t>(bytes), bin_) != static_cast<std::size_t>(bytes))
      throw FormatError(fmt::format("{}: write failed: {}", bin_tmp_, std::strerror(errno)));
  }
  bin_bytes_ += bytes;
}

void IndexedDatasetWriter::finalize() {
  if (finalized_) return;
  if (bin_tmp_.empty()) throw Error(fmt::format("{}.bin: finalize after a failed finalize", prefix_));
  // Any failure from here on removes the temporaries and leaves the old dataset (if any) in place.
  struct Cleanup {
    IndexedDatasetWriter* w;
    std::string idx_tmp;
    bool armed = true;
    ~Cleanup() {
      if (!armed) return;
      if (!idx_tmp.empty()) std::remove(idx_tmp.c_str());
      w->discard();
    }
  } cleanup{this, {}};
  const int close_rc = std::fclose(bin_);
  bin_ = nullptr;
  if (close_rc != 0) throw FormatError(fmt::format("{}: close failed: {}", bin_tmp_, std::strerror(errno)));
  const std::size_t n = sizes_.size();
  std::vector<unsigned char> out;
  out.reserve(IndexedDataset::kHeaderBytes + 12 * n + 8 * doc_idx_.size());
  out.insert(out.end(), IndexedDataset::kMagic, IndexedDataset::kMagic + 9);
  append_le<std::uint64_t>(out, IndexedDataset::kVersion);
  out.push_back(static_cast<unsigned char>(dtype_));
  append_le<std::uint64_t>(out, n);
  append_le<std::uint64_t>(out, doc_idx_.size());
  for (std::int32_t s : sizes_) append_le(out, s);
  const std::int64_t item = static_cast<std::int64_t>(index_dtype_size(dtype_));
  std::int64_t ptr = 0;
  for (std::int32_t s : sizes_) {
    append_le(out, ptr);
    ptr += s * item;
  }
  for (std::int64_t d : doc_idx_) append_le(out, d);
  // The index too goes to a temporary name first, so a crash never leaves a half-written index.
  const std::string idx = prefix_ + ".idx", bin = prefix_ + ".bin";
  const int fd = create_temporary(idx, cleanup.idx_tmp);
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    const int e = errno;
    ::close(fd);
    throw FormatError(fmt::format("{}: cannot open: {}", cleanup.idx_tmp, std::strerror(e)));
  }
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok)
    throw FormatError(fmt::format("{}: write failed: {}", cleanup.idx_tmp, std::strerror(errno)));
  // The old .idx goes first: between the renames a reader finds no index (a clean error), never a
  // new .bin paired with the old .idx. Readers that mapped the old files keep them (unlinked inodes).
  if (std::remove(idx.c_str()) != 0 && errno != ENOENT)
    throw FormatError(fmt::format("{}: cannot replace: {}", idx, std::strerror(errno)));
  if (std::rename(bin_tmp_.c_str(), bin.c_str()) != 0)
    throw FormatError(fmt::format("{}: cannot rename to {}: {}", bin_tmp_, bin, std::strerror(errno)));
  bin_tmp_.clear();  // now <prefix>.bin: not ours to remove
  if (std::rename(cleanup.idx_tmp.c_str(), idx.c_str()) != 0)
    throw FormatError(fmt::format("{}: cannot rename to {}: {}", cleanup.idx_tmp, idx, std::strerror(errno)));
  cleanup.armed = false;
  finalized_ = true;
}

void merge_indexed_datasets(const std::vector<std::string>& input_prefixes, const std::string& output_prefix) {
  if (input_prefixes.empty()) throw Error("merge_indexed_datasets: no inputs");
  IndexedDatasetWriter writer(output_prefix, IndexedDataset(input_prefixes.front()).dtype());
  for (const auto& p : input_prefixes) writer.merge(p);
  writer.finalize();
}

}  // namespace tessera
