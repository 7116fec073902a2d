// The .npy format (numpy's np.save / np.load), as far as cached dataset indices need it: a C-order
// array of little-endian integers ('|u1', '<i2', '<i4', '<u4', '<i8', '<u8') of any rank. Megatron-LM
// caches its dataset indices (GPT's doc_idx / sample_idx / shuffle_idx, BERT's and T5's samples
// mapping, the blend's dataset_index / dataset_sample_index) as such files, so Tessera's caches are
// readable by numpy and the other way round. Little-endian machines only (data is written as held).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera {

enum class NpyDtype { u1, i2, i4, u4, i8, u8 };

int npy_dtype_size(NpyDtype t);
// numpy's descr: "|u1", "<i2", "<i4", "<u4", "<i8", "<u8".
const char* npy_descr(NpyDtype t);

struct NpyHeader {
  NpyDtype dtype = NpyDtype::i8;
  std::vector<std::int64_t> shape;
  std::size_t data_offset = 0;  // where the elements start in the file
  std::int64_t numel() const;
};

// Writes the elements at data (numel(shape) of npy_dtype_size(dtype) bytes) to path, as np.save
// does (version 1.0 header padded to 64 bytes). Throws tessera::Error when the file cannot be written.
void write_npy(const std::string& path, const void* data, NpyDtype dtype, const std::vector<std::int64_t>& shape);

// Parses the header of a .npy file held in bytes[0, size); throws FormatError naming path for
// anything other than a C-order integer array of the types above whose data fills the rest exactly.
NpyHeader parse_npy(const unsigned char* bytes, std::size_t size, const std::string& path);

// A .npy file mapped read-only (kept mapped while the MappedNpy or owner() lives).
class MappedNpy {
 public:
  // FormatError naming path for a file that cannot be opened, is empty, or is not a .npy array.
  static MappedNpy open(const std::string& path);

  const std::string& path() const { return path_; }
  const NpyHeader& header() const { return header_; }
  NpyDtype dtype() const { return header_.dtype; }
  const std::vector<std::int64_t>& shape() const { return header_.shape; }
  std::int64_t numel() const { return header_.numel(); }
  const unsigned char* data() const { return data_; }
  const std::shared_ptr<const void>& owner() const { return owner_; }
  // Element i, whatever the file's integer type (a '<u8' past int64 reads as negative).
  std::int64_t at(std::int64_t i) const;
  // All elements converted to T (the caller checks the range where it matters).
  template <typename T>
  std::vector<T> to_vector() const {
    std::vector<T> out(static_cast<std::size_t>(numel()));
    for (std::int64_t i = 0; i < numel(); ++i) out[static_cast<std::size_t>(i)] = static_cast<T>(at(i));
    return out;
  }

 private:
  std::string path_;
  NpyHeader header_;
  std::shared_ptr<const void> owner_;
  const unsigned char* data_ = nullptr;
};

}  // namespace tessera
