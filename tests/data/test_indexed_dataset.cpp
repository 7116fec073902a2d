// Megatron MMIDIDX compatibility: exact bytes of the documented example, round trips, a file written
// independently by numpy/struct, merging, and a clear FormatError for every kind of corruption.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "expect_error.hpp"
#include "gpt_dataset.hpp"
#include "test_util.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/error.hpp"

using namespace tessera;
using namespace tessera::gpt_indexed;  // GptDataset (plugins/gpt_indexed)
using test::TempDir;

namespace {

std::vector<std::vector<std::int32_t>> read_all(const IndexedDataset& ds) {
  std::vector<std::vector<std::int32_t>> out;
  for (std::int64_t i = 0; i < ds.num_sequences(); ++i) out.push_back(ds.sequence_int32(i));
  return out;
}

template <typename T>
void put(std::vector<unsigned char>& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

// Expects a FormatError whose message names `file` and contains `what`.
void expect_format_error(const std::string& prefix, const std::string& file, const std::string& what) {
  try {
    IndexedDataset ds(prefix);
    FAIL("no error for " << file << " (expected: " << what << ")");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(file) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("worked example: [[1,2,3],[4,5]] as uint16 gives the documented bytes", "[unit]") {
  TempDir dir;
  const std::string prefix = dir / "ex";
  IndexedDatasetWriter w(prefix, IndexDtype::u16);
  w.add_document(std::vector<std::int32_t>{1, 2, 3});
  w.add_document(std::vector<std::int32_t>{4, 5});
  w.finalize();
  const std::vector<unsigned char> bin = test::read_bytes(prefix + ".bin");
  const std::vector<unsigned char> idx = test::read_bytes(prefix + ".idx");
  REQUIRE(bin == std::vector<unsigned char>{1, 0, 2, 0, 3, 0, 4, 0, 5, 0});
  const std::vector<unsigned char> expected = {
      'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0,  // magic
      1, 0, 0, 0, 0, 0, 0, 0,                   // version
      8,                                        // dtype uint16
      2, 0, 0, 0, 0, 0, 0, 0,                   // N
      3, 0, 0, 0, 0, 0, 0, 0,                   // D
      3, 0, 0, 0, 2, 0, 0, 0,                   // sizes
      0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,  // pointers
      0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};  // doc_idx
  REQUIRE(idx.size() == 82);
  REQUIRE(idx == expected);

  IndexedDataset ds(prefix);
  REQUIRE(ds.num_sequences() == 2);
  REQUIRE(ds.num_documents() == 2);
  REQUIRE(ds.dtype() == IndexDtype::u16);
  REQUIRE(ds.total_tokens() == 5);
  REQUIRE(ds.document_index() == std::vector<std::int64_t>{0, 1, 2});
  auto s0 = ds.sequence(0).as<std::uint16_t>();
  REQUIRE(std::vector<std::uint16_t>(s0.begin(), s0.end()) == std::vector<std::uint16_t>{1, 2, 3});
  REQUIRE(ds.sequence_int32(1) == std::vector<std::int32_t>{4, 5});
  REQUIRE(ds.sequence_pointer(1) == 6);
  REQUIRE_THROWS_AS(ds.sequence(0).as<std::int32_t>(), Error);
  std::int32_t part[2];
  ds.read(0, 1, 2, part);
  REQUIRE(part[0] == 2);
  REQUIRE(part[1] == 3);
  REQUIRE_THROWS_AS(ds.read(0, 2, 2, part), Error);
  REQUIRE_THROWS_AS(ds.sequence(2), Error);
}

TEST_CASE("writer and reader round-trip documents of several sequences", "[unit]") {
  for (IndexDtype dtype : {IndexDtype::u16, IndexDtype::i32}) {
    TempDir dir;
    const std::string prefix = dir / "rt";
    std::mt19937 rng(42);
    const std::int32_t high = dtype == IndexDtype::u16 ? 65535 : 1 << 30;
    std::vector<std::vector<std::int32_t>> seqs;
    std::vector<std::int64_t> doc_idx{0};
    {
      IndexedDatasetWriter w(prefix, dtype);
      for (int d = 0; d < 50; ++d) {
        const int nseq = 1 + static_cast<int>(rng() % 3);
        for (int s = 0; s < nseq; ++s) {
          std::vector<std::int32_t> t(rng() % 30);  // empty sequences included
          for (auto& x : t) x = static_cast<std::int32_t>(rng() % (static_cast<std::uint32_t>(high) + 1));
          w.add_sequence(t);
          seqs.push_back(t);
        }
        w.end_document();
        doc_idx.push_back(static_cast<std::int64_t>(seqs.size()));
      }
      w.finalize();
    }
    IndexedDataset ds(prefix);
    REQUIRE(ds.dtype() == dtype);
    REQUIRE(read_all(ds) == seqs);
    REQUIRE(ds.document_index() == doc_idx);
    REQUIRE(ds.num_documents() == 50);
  }
}

TEST_CASE("writer rejects tokens that do not fit the dtype", "[unit]") {
  TempDir dir;
  IndexedDatasetWriter w(dir / "x", IndexDtype::u16);
  REQUIRE_THROWS_AS(w.add_sequence(std::vector<std::int32_t>{65536}), Error);
  REQUIRE_THROWS_AS(w.add_sequence(std::vector<std::int32_t>{-1}), Error);
  REQUIRE(index_dtype_for_vocab(50257) == IndexDtype::u16);
  REQUIRE(index_dtype_for_vocab(65500) == IndexDtype::i32);
}

TEST_CASE("reader reads a Megatron-format file written independently with numpy", "[reference]") {
  for (int code : {8, 4}) {
    TempDir dir;
    const std::string prefix = dir / "py";
    test::run_command({"/usr/bin/python3", TESSERA_DATA_TESTS_DIR "/write_megatron_dataset.py", prefix,
                       std::to_string(code)});
    const auto j = nlohmann::json::parse(test::read_text(prefix + ".json"));
    IndexedDataset ds(prefix);
    REQUIRE(static_cast<int>(ds.dtype()) == code);
    std::vector<std::vector<std::int32_t>> seqs;
    std::vector<std::int64_t> doc_idx{0};
    for (const auto& doc : j["docs"]) {
      for (const auto& seq : doc) seqs.push_back(seq.get<std::vector<std::int32_t>>());
      doc_idx.push_back(static_cast<std::int64_t>(seqs.size()));
    }
    REQUIRE(read_all(ds) == seqs);
    REQUIRE(ds.document_index() == doc_idx);

    // And our writer reproduces the file byte for byte.
    IndexedDatasetWriter w(dir / "ours", ds.dtype());
    for (std::size_t k = 0; k + 1 < doc_idx.size(); ++k) {
      for (auto s = doc_idx[k]; s < doc_idx[k + 1]; ++s) w.add_sequence(seqs[static_cast<std::size_t>(s)]);
      w.end_document();
    }
    w.finalize();
    REQUIRE(test::read_bytes(dir / "ours.idx") == test::read_bytes(prefix + ".idx"));
    REQUIRE(test::read_bytes(dir / "ours.bin") == test::read_bytes(prefix + ".bin"));
  }
}

TEST_CASE("merge appends sizes, shifted doc_idx and tokens as Megatron does", "[unit]") {
  TempDir dir;
  {
    IndexedDatasetWriter a(dir / "a", IndexDtype::u16);
    a.add_document(std::vector<std::int32_t>{1, 2, 3});
    a.add_sequence(std::vector<std::int32_t>{4});
    a.add_sequence(std::vector<std::int32_t>{5, 6});
    a.end_document();
    a.finalize();
    IndexedDatasetWriter b(dir / "b", IndexDtype::u16);
    b.add_document(std::vector<std::int32_t>{7});
    b.add_document(std::vector<std::int32_t>{8, 9});
    b.finalize();
    IndexedDatasetWriter c(dir / "c", IndexDtype::i32);
    c.add_document(std::vector<std::int32_t>{1});
    c.finalize();
  }
  merge_indexed_datasets({dir / "a", dir / "b"}, dir / "ab");
  IndexedDataset ab(dir / "ab");
  REQUIRE(read_all(ab) == std::vector<std::vector<std::int32_t>>{{1, 2, 3}, {4}, {5, 6}, {7}, {8, 9}});
  REQUIRE(ab.document_index() == std::vector<std::int64_t>{0, 1, 3, 4, 5});
  REQUIRE(test::read_bytes(dir / "ab.bin").size() == 18);
  IndexedDatasetWriter w(dir / "bad", IndexDtype::u16);
  REQUIRE_THROWS_AS(w.merge(dir / "c"), FormatError);
}

TEST_CASE("every kind of corruption is a FormatError naming the file", "[unit]") {
  TempDir dir;
  const std::string good = dir / "good";
  {
    IndexedDatasetWriter w(good, IndexDtype::u16);
    w.add_document(std::vector<std::int32_t>{1, 2, 3});
    w.add_document(std::vector<std::int32_t>{4, 5});
    w.add_document(std::vector<std::int32_t>{6});
    w.finalize();
  }
  const auto idx = test::read_bytes(good + ".idx");  // N=3, D=4: 34 + 36 + 32 = 102 bytes
  const auto bin = test::read_bytes(good + ".bin");
  REQUIRE(idx.size() == 102);
  int case_no = 0;
  // Writes a corrupt pair (idx, bin) and expects `what` in a message naming `which` file.
  auto check = [&](std::vector<unsigned char> i, std::vector<unsigned char> b, const std::string& what,
                   bool names_bin = false) {
    const std::string p = dir / ("bad" + std::to_string(case_no++));
    test::write_bytes(p + ".idx", i);
    test::write_bytes(p + ".bin", b);
    expect_format_error(p, p + (names_bin ? ".bin" : ".idx"), what);
  };

  SECTION("missing files") {
    expect_format_error(dir / "nothing", dir / "nothing.idx", "cannot open");
    test::write_bytes(dir / "onlyidx.idx", idx);
    expect_format_error(dir / "onlyidx", dir / "onlyidx.bin", "cannot open");
  }
  SECTION("bad magic") {
    auto i = idx;
    i[0] = 'X';
    check(i, bin, "bad magic");
  }
  SECTION("wrong version") {
    auto i = idx;
    put<std::uint64_t>(i, 9, 2);
    check(i, bin, "unsupported version 2");
  }
  SECTION("unknown dtype code and float codes") {
    for (unsigned char code : {0, 6, 7, 9, 255}) {
      auto i = idx;
      i[17] = code;
      check(i, bin, fmt::format("dtype code {}", code));
    }
  }
  SECTION("truncated index") {
    check(std::vector<unsigned char>(idx.begin(), idx.begin() + 20), bin, "truncated index");
    check(std::vector<unsigned char>(idx.begin(), idx.end() - 1), bin, "should be 34+12N+8D = 102 bytes, but it is 101");
    check(std::vector<unsigned char>(idx.begin(), idx.begin() + 40), bin, "should be 34+12N+8D = 102 bytes, but it is 40");
    auto longer = idx;
    longer.push_back(0);
    check(longer, bin, "but it is 103");
    auto huge_n = idx;
    put<std::uint64_t>(huge_n, 18, ~std::uint64_t{0} / 4);
    check(huge_n, bin, "should be 34+12N+8D = more than 2^64 bytes");
  }
  SECTION("pointers inconsistent with sizes") {
    auto i = idx;
    put<std::int64_t>(i, 34 + 12 + 8, 8);  // pointer[1] should be 6
    check(i, bin, "pointer of sequence 1 is 8");
  }
  SECTION("sizes beyond the .bin") {
    auto i = idx;
    put<std::int32_t>(i, 34 + 8, 5);  // sizes[2] 1 -> 5: runs past the 12-byte .bin
    check(i, bin, "sequence 2 ends at byte 20");
    check(idx, std::vector<unsigned char>(bin.begin(), bin.end() - 2), "only 10 bytes");
    auto longer = bin;
    longer.push_back(0);
    check(idx, longer, "mismatched .bin/.idx pair");
  }
  SECTION("negative size") {
    auto i = idx;
    put<std::int32_t>(i, 34, -3);
    check(i, bin, "negative size");
  }
  SECTION("doc_idx not monotonic, not starting at 0, beyond N") {
    const std::size_t doc_at = 34 + 12 * 3;
    auto i = idx;
    put<std::int64_t>(i, doc_at + 16, 0);  // 0,1,0,3
    check(i, bin, "not monotonic");
    i = idx;
    put<std::int64_t>(i, doc_at, 1);
    check(i, bin, "doc_idx[0] is 1");
    i = idx;
    put<std::int64_t>(i, doc_at + 24, 4);
    check(i, bin, "exceeds the number of sequences");
  }
}

namespace {

std::vector<std::string> folder_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void write_dataset(const std::string& prefix, const std::vector<std::vector<std::int32_t>>& docs,
                   IndexDtype dtype = IndexDtype::u16) {
  IndexedDatasetWriter w(prefix, dtype);
  for (const auto& d : docs) w.add_document(d);
  w.finalize();
}

}  // namespace

TEST_CASE("rewriting a dataset that a reader has mapped: the reader keeps valid files", "[unit]") {
  // A trainer maps the .bin; `tessera preprocess` then rewrites the same prefix. Truncating the file
  // in place killed the reader with SIGBUS on its next read; the writer now renames new files into place.
  TempDir dir;
  const std::string prefix = dir / "corpus";
  std::vector<std::vector<std::int32_t>> old_docs;
  for (int d = 0; d < 64; ++d) old_docs.push_back(std::vector<std::int32_t>(2048, d + 1));  // 256 KiB: many pages
  write_dataset(prefix, old_docs);
  const IndexedDataset reader(prefix);
  {
    IndexedDatasetWriter w(prefix, IndexDtype::u16);
    // While the new dataset is being written, the old pair is still complete and readable.
    w.add_document(std::vector<std::int32_t>{7, 8, 9});
    CHECK(test::read_bytes(prefix + ".bin").size() == 64 * 2048 * 2);
    CHECK(IndexedDataset(prefix).num_documents() == 64);
    w.finalize();
  }
  REQUIRE(read_all(reader) == old_docs);  // the old, unlinked files: every page still there
  const IndexedDataset fresh(prefix);
  REQUIRE(read_all(fresh) == std::vector<std::vector<std::int32_t>>{{7, 8, 9}});
  REQUIRE(folder_entries(dir.path.string()) == std::vector<std::string>{"corpus.bin", "corpus.idx"});
}

TEST_CASE("a writer that does not finalize leaves the old dataset as it was and no temporary files", "[unit]") {
  TempDir dir;
  const std::string prefix = dir / "keep";
  write_dataset(prefix, {{1, 2, 3}, {4, 5}});
  const auto idx = test::read_bytes(prefix + ".idx"), bin = test::read_bytes(prefix + ".bin");
  {
    IndexedDatasetWriter w(prefix, IndexDtype::u16);
    w.add_document(std::vector<std::int32_t>{9, 9, 9, 9});
    REQUIRE(folder_entries(dir.path.string()).size() == 3);  // keep.bin, keep.idx and the temporary
    REQUIRE_THROWS_AS(w.add_sequence(std::vector<std::int32_t>{70000}), Error);  // then fails
  }
  REQUIRE(test::read_bytes(prefix + ".idx") == idx);
  REQUIRE(test::read_bytes(prefix + ".bin") == bin);
  REQUIRE(folder_entries(dir.path.string()) == std::vector<std::string>{"keep.bin", "keep.idx"});
  // A fresh prefix: nothing at all is left behind.
  { IndexedDatasetWriter w(dir / "never", IndexDtype::u16); }
  REQUIRE(folder_entries(dir.path.string()) == std::vector<std::string>{"keep.bin", "keep.idx"});
  // Merging a dataset into its own prefix works too: the inputs are read before the rename.
  merge_indexed_datasets({prefix, prefix}, prefix);
  REQUIRE(read_all(IndexedDataset(prefix)) == std::vector<std::vector<std::int32_t>>{{1, 2, 3}, {4, 5}, {1, 2, 3}, {4, 5}});
}

TEST_CASE("a FIFO or other non-regular file as .idx or .bin is refused at once, naming it", "[unit]") {
  TempDir dir;
  write_dataset(dir / "good", {{1, 2, 3}});
  for (const std::string ext : {".idx", ".bin"}) {
    const std::string prefix = dir / ("fifo" + std::string(ext == ".idx" ? "i" : "b"));
    std::filesystem::copy_file(dir / "good.idx", prefix + ".idx");
    std::filesystem::copy_file(dir / "good.bin", prefix + ".bin");
    std::filesystem::remove(prefix + ext);
    REQUIRE(::mkfifo((prefix + ext).c_str(), 0600) == 0);
    // Without the check, open() waits for a writer for ever; this thread plays that writer when the
    // reader is still not done after 2 s, so a regression fails (it was blocked) rather than hangs
    // the test. (Opening the writer any earlier would also succeed during the instant the checked,
    // non-blocking open holds the FIFO, and call that blocking.)
    std::atomic<bool> done{false}, was_blocked{false};
    std::thread unblock([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (done) return;
      was_blocked = true;
      for (int tries = 0; tries < 250 && !done; ++tries) {
        const int fd = ::open((prefix + ext).c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {  // succeeds once the reader is in open()
          ::close(fd);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    const std::string msg = message_of<FormatError>([&] { IndexedDataset ds(prefix); });
    done = true;
    unblock.join();
    INFO(msg);
    CHECK(!was_blocked);
    CHECK(msg.find(prefix + ext) != std::string::npos);
    CHECK(msg.find("FIFO") != std::string::npos);
    CHECK(msg.find("not a regular file") != std::string::npos);
  }
  std::filesystem::create_directories(dir / "dir.idx");
  std::filesystem::copy_file(dir / "good.bin", dir / "dir.bin");
  CHECK(message_of<FormatError>([&] { IndexedDataset ds(dir / "dir"); }).find("directory") != std::string::npos);
}

TEST_CASE("token ids that are negative or past int32 are a FormatError, never narrowed", "[unit]") {
  TempDir dir;
  const std::string prefix = dir / "wide";
  write_dataset(prefix, {{1, 2, 3}, {4, 5, 6, 7}}, IndexDtype::i64);
  auto bin = test::read_bytes(prefix + ".bin");
  REQUIRE(bin.size() == 7 * 8);
  // Sequence 1, position 2: 2^32 + 65, which a plain cast turns into 65.
  put<std::int64_t>(bin, (3 + 2) * 8, (std::int64_t{1} << 32) + 65);
  test::write_bytes(prefix + ".bin", bin);
  auto data = std::make_shared<const IndexedDataset>(prefix);  // opening does not read tokens
  REQUIRE(data->sequence_int32(0) == std::vector<std::int32_t>{1, 2, 3});
  std::string msg = message_of<FormatError>([&] { data->sequence_int32(1); });
  INFO(msg);
  CHECK(msg.find(prefix + ".bin") != std::string::npos);
  CHECK(msg.find("4294967361") != std::string::npos);
  CHECK(msg.find("position 2 of sequence 1") != std::string::npos);
  std::int32_t two[2];
  data->read(1, 0, 2, two);  // the tokens before it are fine
  CHECK(two[1] == 5);
  // Training on it: caught by the vocabulary check when the vocabulary is known, by the reader when not.
  GptDatasetOptions o;
  o.seq_length = 2;
  o.num_samples = 3;
  o.vocab_size = 50257;
  CHECK(message_of<FormatError>([&] { GptDataset(data, 0, 2, o); }).find("4294967361") != std::string::npos);
  o.vocab_size = 0;
  const GptDataset ds(data, 0, 2, o);
  std::vector<std::int32_t> w(3);
  bool caught = false;
  for (std::int64_t i = 0; i < ds.size(); ++i) try {
      ds.window(i, w.data());
      for (auto t : w) CHECK(t != 65);
    } catch (const FormatError& e) {
      caught = true;
      CHECK(std::string(e.what()).find(prefix + ".bin") != std::string::npos);
    }
  CHECK(caught);

  // Negative ids in signed dtypes, and INT64_MIN.
  for (IndexDtype dt : {IndexDtype::i8, IndexDtype::i16, IndexDtype::i32, IndexDtype::i64}) {
    const std::string p = dir / fmt::format("neg{}", static_cast<int>(dt));
    write_dataset(p, {{1, 2}}, dt);
    auto b = test::read_bytes(p + ".bin");
    const std::size_t item = index_dtype_size(dt);
    std::memset(b.data() + item, 0xff, item);  // token 1 → -1
    test::write_bytes(p + ".bin", b);
    msg = message_of<FormatError>([&] { IndexedDataset(p).sequence_int32(0); });
    CHECK(msg.find("token -1 at position 1 of sequence 0") != std::string::npos);
  }
  put<std::int64_t>(bin, (3 + 2) * 8, std::numeric_limits<std::int64_t>::min());
  test::write_bytes(prefix + ".bin", bin);
  CHECK(message_of<FormatError>([&] { IndexedDataset(prefix).sequence_int32(1); }).find("-9223372036854775808") !=
        std::string::npos);
  // The largest int32 is a valid id for the reader (a vocabulary check may still refuse it).
  put<std::int64_t>(bin, (3 + 2) * 8, std::numeric_limits<std::int32_t>::max());
  test::write_bytes(prefix + ".bin", bin);
  CHECK(IndexedDataset(prefix).sequence_int32(1)[2] == std::numeric_limits<std::int32_t>::max());
}
