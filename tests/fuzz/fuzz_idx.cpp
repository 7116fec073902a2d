// Fuzzes the Megatron indexed dataset reader (.idx + .bin) and the GPT sample indices built over it.
// One fuzz input is an .idx and a .bin joined by a separator line (kSeparator), so the mutations
// reach the index most of the time and the tokens some of the time; an input without the separator
// is an .idx with an empty .bin. Seeds are small valid datasets written with IndexedDatasetWriter,
// one per token dtype. Parsing = write both files, open the dataset, read every sequence and the
// document index, then build GPT samples over all documents and over a "2,1,1" split (seq_length
// 4, a few samples) and read every sample window, with and without a vocabulary check; then the
// same again on a repaired copy (see repaired()) so that mutations reach past the length checks.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "fuzz_harness.hpp"
#include "gpt_dataset.hpp"
#include "tessera/data/indexed_dataset.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::gpt_indexed;  // GptDataset (plugins/gpt_indexed)
using tessera::fuzz::Bytes;

namespace {

const std::string kSeparator = "\n--tessera-fuzz-bin--\n";

struct Folder {
  fs::path path = fs::temp_directory_path() / ("tessera_fuzz_idx_" + std::to_string(::getpid()));
  Folder() { fs::create_directories(path); }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Bytes seed(const Folder& dir, IndexDtype dtype, const std::vector<std::vector<std::vector<std::int32_t>>>& docs) {
  const std::string prefix = (dir.path / "seed").string();
  {
    IndexedDatasetWriter w(prefix, dtype);
    for (const auto& doc : docs) {
      for (const auto& seq : doc) w.add_sequence(seq);
      w.end_document();
    }
    w.finalize();
  }
  return fuzz::read_file_bytes(prefix + ".idx") + kSeparator + fuzz::read_file_bytes(prefix + ".bin");
}

void read_all_windows(const GptDataset& ds) {
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(ds.seq_length())), labels(tokens.size());
  std::vector<float> mask(tokens.size());
  for (std::int64_t i = 0; i < ds.size(); ++i) ds.sample(i, tokens.data(), labels.data(), mask.data());
}

// The same files made self-consistent where a reader checks consistency first: magic, version and a
// token dtype restored, N and D fitted to the file's length, pointers recomputed from the sizes and the .bin
// resized to them (cycling its own bytes). The fuzzed sizes, dtype, doc_idx and token values then
// reach the later checks and the GPT index building, which an input that is merely one byte too long
// never does.
std::pair<Bytes, Bytes> repaired(Bytes idx, Bytes bin) {
  constexpr std::size_t kHeader = IndexedDataset::kHeaderBytes;
  if (idx.size() < kHeader) idx.resize(kHeader, '\0');
  std::memcpy(idx.data(), IndexedDataset::kMagic, sizeof IndexedDataset::kMagic);
  const std::uint64_t version = IndexedDataset::kVersion;
  std::memcpy(idx.data() + 9, &version, 8);
  std::uint64_t n = 0;
  std::memcpy(&n, idx.data() + 18, 8);
  const std::uint64_t room = idx.size() - kHeader;
  if (n > room / 12) n = room / 12;
  if (n > 0 && room - 12 * n < 8) --n;  // leave room for doc_idx[0]
  const std::uint64_t d = (room - 12 * n) / 8;
  std::memcpy(idx.data() + 18, &n, 8);
  std::memcpy(idx.data() + 26, &d, 8);
  idx.resize(kHeader + 12 * n + 8 * d);
  static constexpr std::uint8_t kCodes[] = {1, 2, 3, 4, 5, 8};
  auto code = static_cast<std::uint8_t>(idx[17]);
  if (std::find(std::begin(kCodes), std::end(kCodes), code) == std::end(kCodes)) code = kCodes[code % 6];
  idx[17] = static_cast<char>(code);
  const std::int64_t item = code == 1 || code == 2 ? 1 : code == 3 || code == 8 ? 2 : code == 4 ? 4 : 8;
  std::int64_t ptr = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::int32_t size = 0;
    std::memcpy(&size, idx.data() + kHeader + 4 * i, 4);
    std::memcpy(idx.data() + kHeader + 4 * n + 8 * i, &ptr, 8);
    if (size > 0) ptr += size * item;
  }
  if (ptr <= (std::int64_t{1} << 20)) {
    Bytes grown(static_cast<std::size_t>(ptr), '\0');
    for (std::size_t k = 0; k < grown.size() && !bin.empty(); ++k) grown[k] = bin[k % bin.size()];
    bin = std::move(grown);
  }
  return {std::move(idx), std::move(bin)};
}

void open_and_read(const Folder& dir, const Bytes& idx, const Bytes& bin) {
  const std::string prefix = (dir.path / "in").string();
  fuzz::write_file_bytes(prefix + ".idx", idx);
  fuzz::write_file_bytes(prefix + ".bin", bin);

  auto data = std::make_shared<const IndexedDataset>(prefix);
  std::int64_t tokens = 0;
  for (std::int64_t i = 0; i < data->num_sequences(); ++i)
    tokens += static_cast<std::int64_t>(data->sequence_int32(i).size());
  if (tokens != data->total_tokens()) throw std::logic_error("sequence lengths do not add up to total_tokens()");
  const auto doc_idx = data->document_index();
  for (std::int64_t k = 0; k <= data->num_documents(); ++k)
    if (data->document_index(k) != doc_idx[static_cast<std::size_t>(k)]) throw std::logic_error("doc_idx differs");

  GptDatasetOptions o;
  o.seq_length = 4;
  o.seed = 1234;
  o.num_samples = 12;
  o.eod_token = 0;
  o.eod_mask_loss = true;
  read_all_windows(GptDataset(data, 0, data->num_sequences(), o));
  o.vocab_size = 300;  // ids the seeds use are below it; mutated ones may not be
  const auto splits = build_gpt_splits(data, "2,1,1", {12, 3, 0}, o);
  for (const auto& s : splits) read_all_windows(*s);
}

// The input as given, then repaired; any exception other than tessera::Error escapes at once.
void parse(const Folder& dir, const Bytes& input) {
  const std::size_t cut = input.find(kSeparator);
  const Bytes idx = input.substr(0, cut), bin = cut == Bytes::npos ? Bytes() : input.substr(cut + kSeparator.size());
  std::exception_ptr first;
  try {
    open_and_read(dir, idx, bin);
  } catch (const tessera::Error&) {
    first = std::current_exception();
  }
  const auto [fixed_idx, fixed_bin] = repaired(idx, bin);
  open_and_read(dir, fixed_idx, fixed_bin);
  if (first) std::rethrow_exception(first);
}

}  // namespace

TEST_CASE("fuzz: Megatron .idx/.bin reader and GPT sample indices", "[fuzz]") {
  const Folder dir;
  fuzz::FuzzTarget t;
  t.name = "idx";
  t.seeds = {
      seed(dir, IndexDtype::u16, {{{1, 2, 3}}, {{4, 5}}, {{6, 7, 8, 9, 10, 0}}}),
      seed(dir, IndexDtype::i32, {{{11, 12}, {13}}, {{}}, {{14, 15, 16, 17, 18, 19, 20, 21, 22}}, {{23, 0}}}),
      seed(dir, IndexDtype::i64, {{{1, 2, 3, 4, 5, 6, 7}}, {{8, 9}, {10, 11, 12}}}),
      seed(dir, IndexDtype::u8, {{{250, 251, 252}}, {{1, 9}}, {{2, 3, 4, 5, 6}}}),
      seed(dir, IndexDtype::i16, {{{100, 200, 299}}, {{7, 7, 7, 7}}, {{1, 2}}, {{2, 3}}}),
      seed(dir, IndexDtype::i8, {{{1, 2, 3, 4}}, {{5, 6, 7, 8}}, {{9, 10}}}),
  };
  t.parse = [&](const Bytes& input) { parse(dir, input); };
  t.iterations = 4000;
  tessera::fuzz::run_fuzz(t);
}
