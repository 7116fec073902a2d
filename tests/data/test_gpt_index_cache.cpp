// Cached dataset indices (core/include/tessera/data/{npy_file,index_cache,index_cache_name}.hpp):
// GPT's doc_idx / sample_idx / shuffle_idx (plugins/gpt_indexed) and a blend's dataset_index /
// dataset_sample_index (BlendedDataset) are written as .npy files on the first open and reused on
// the next, equal to freshly built ones, readable by numpy with Megatron's types; a corrupt file is
// rebuilt, a changed split gets other files, and a folder that cannot be written only costs the cache.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "data_source.hpp"
#include "gpt_dataset.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/data/blended_dataset.hpp"
#include "tessera/data/index_cache_name.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/data/npy_file.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;
using namespace tessera::gpt_indexed;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// 120 documents of 3..60 tokens.
std::string write_corpus(const TempDir& dir, const std::string& name) {
  IndexedDatasetWriter w(dir / name, IndexDtype::u16);
  for (int d = 0; d < 120; ++d) {
    std::vector<std::int32_t> doc(static_cast<std::size_t>(3 + (d * 37) % 58));
    for (std::size_t k = 0; k < doc.size(); ++k) doc[k] = static_cast<std::int32_t>((d * 7 + k) % 1000);
    w.add_document(doc);
  }
  w.finalize();
  return dir / name;
}

GptDatasetOptions cached_options(const std::string& cache_dir = "") {
  GptDatasetOptions o;
  o.seq_length = 32;
  o.seed = 1234;
  o.num_samples = 500;  // several epochs
  o.cache_indices = true;
  o.cache_dir = cache_dir;
  return o;
}

bool same_indices(const GptIndices& a, const GptIndices& b) {
  return a.doc_idx == b.doc_idx && a.sample_idx == b.sample_idx && a.shuffle_idx == b.shuffle_idx &&
         a.num_epochs == b.num_epochs && a.tokens_per_epoch == b.tokens_per_epoch &&
         a.separate_last_epoch == b.separate_last_epoch;
}

std::vector<std::string> npy_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".npy") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE(".npy files: numpy's header, any rank, the integer types of cached indices", "[unit]") {
  TempDir dir;
  const std::vector<std::int16_t> v = {1, -2, 3, -4, 5, -6};
  write_npy(dir / "a.npy", v.data(), NpyDtype::i2, {2, 3});
  const MappedNpy m = MappedNpy::open(dir / "a.npy");
  REQUIRE(m.dtype() == NpyDtype::i2);
  REQUIRE(m.shape() == std::vector<std::int64_t>{2, 3});
  REQUIRE(m.to_vector<std::int16_t>() == v);
  REQUIRE(m.header().data_offset % 64 == 0);
  const std::vector<std::uint8_t> u = {0, 255, 7};
  write_npy(dir / "b.npy", u.data(), NpyDtype::u1, {3});
  REQUIRE(MappedNpy::open(dir / "b.npy").to_vector<std::uint8_t>() == u);
  const std::string out = test::run_command(
      {"/usr/bin/python3", "-c",
       "import sys, numpy as np; a = np.load(sys.argv[1]); b = np.load(sys.argv[2]); "
       "print(a.dtype, a.shape, a.sum(), b.dtype, b.shape, b.sum())",
       dir / "a.npy", dir / "b.npy"});
  REQUIRE(out.find("int16 (2, 3) -3 uint8 (3,) 262") != std::string::npos);
  // numpy's own files read back (np.save of int64 1-D and uint32 2-D).
  test::run_command({"/usr/bin/python3", "-c",
                     "import sys, numpy as np; np.save(sys.argv[1], np.arange(5, dtype=np.int64)); "
                     "np.save(sys.argv[2], np.arange(6, dtype=np.uint32).reshape(3, 2))",
                     dir / "c.npy", dir / "d.npy"});
  REQUIRE(MappedNpy::open(dir / "c.npy").to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  const MappedNpy d = MappedNpy::open(dir / "d.npy");
  REQUIRE((d.dtype() == NpyDtype::u4 && d.shape() == std::vector<std::int64_t>{3, 2} && d.at(5) == 5));
  // Not .npy, or truncated: a FormatError naming the file.
  test::write_text(dir / "e.npy", "hello");
  REQUIRE_THROWS_AS(MappedNpy::open(dir / "e.npy"), FormatError);
  auto bytes = test::read_bytes(dir / "a.npy");
  bytes.pop_back();
  test::write_bytes(dir / "f.npy", bytes);
  REQUIRE_THROWS_WITH(MappedNpy::open(dir / "f.npy"), Catch::Contains(dir / "f.npy") && Catch::Contains("bytes"));
  // The name hash is FNV-1a: fixed values, the same in every build.
  REQUIRE(fnv1a_64("") == 14695981039346656037ULL);
  REQUIRE(stable_hash_hex("a") == "af63dc4c8601ec8c");
  REQUIRE(index_cache_stem("/d/x", "") == "/d/x");
  // In a cache folder the name carries a hash of the dataset's absolute path: /d/x and /e/x, both
  // "x", never share files there (they did, silently: an audit on 2026-12-01).
  REQUIRE(index_cache_stem("/d/x", "/c") == "/c/x-" + stable_hash_hex("/d/x").substr(0, 8));
  REQUIRE(index_cache_stem("/e/x", "/c") != index_cache_stem("/d/x", "/c"));
}

TEST_CASE("GPT indices: cached on the first open, reused on the next, rebuilt when corrupt", "[unit]") {
  TempDir dir;
  const std::string prefix = write_corpus(dir, "corpus");
  auto data = std::make_shared<const IndexedDataset>(prefix);
  GptDatasetOptions plain = cached_options();
  plain.cache_indices = false;
  const GptDataset fresh(data, 10, 110, plain);
  REQUIRE(fresh.cache_paths().empty());
  REQUIRE(npy_files(dir.path.string()).empty());

  const GptDataset first(data, 10, 110, cached_options());
  REQUIRE(first.indices_written());
  REQUIRE(!first.indices_from_cache());
  REQUIRE(first.cache_paths() ==
          std::vector<std::string>{prefix + "_train_indexmap_500ns_32sl_1234s_doc_idx_10-110docs.npy",
                                   prefix + "_train_indexmap_500ns_32sl_1234s_sample_idx_10-110docs.npy",
                                   prefix + "_train_indexmap_500ns_32sl_1234s_shuffle_idx_10-110docs.npy"});
  for (const auto& p : first.cache_paths()) REQUIRE(fs::exists(p));
  REQUIRE(same_indices(first.indices(), fresh.indices()));

  SECTION("reused, equal to freshly built indices, the same samples") {
    const GptDataset second(data, 10, 110, cached_options());
    REQUIRE(second.indices_from_cache());
    REQUIRE(!second.indices_written());
    REQUIRE(same_indices(second.indices(), fresh.indices()));
    std::vector<std::int32_t> a(33), b(33);
    for (std::int64_t i = 0; i < fresh.size(); ++i) {
      fresh.window(i, a.data());
      second.window(i, b.data());
      REQUIRE(a == b);
    }
    // A changed file shows: the cache is what is read (a valid permutation swapped).
    auto shuffle = MappedNpy::open(first.cache_paths()[2]).to_vector<std::uint32_t>();
    std::swap(shuffle[0], shuffle[1]);
    write_npy(first.cache_paths()[2], shuffle.data(), NpyDtype::u4, {static_cast<std::int64_t>(shuffle.size())});
    const GptDataset third(data, 10, 110, cached_options());
    REQUIRE(third.indices_from_cache());
    REQUIRE(third.indices().shuffle_idx[0] == fresh.indices().shuffle_idx[1]);
  }
  SECTION("numpy reads them with Megatron's types: doc_idx int32, sample_idx int32 [n+1, 2], shuffle_idx uint32") {
    const std::string out = test::run_command(
        {"/usr/bin/python3", "-c",
         "import sys, numpy as np; d, s, h = (np.load(p) for p in sys.argv[1:4]); "
         "print(d.dtype, d.shape[0], s.dtype, s.shape[0], s.shape[1], h.dtype, h.shape[0], int(h.sum()), int(s[-1][0]))",
         first.cache_paths()[0], first.cache_paths()[1], first.cache_paths()[2]});
    const auto& x = fresh.indices();
    const std::int64_t n = x.num_samples();
    REQUIRE(out.find(fmt::format("int32 {} int32 {} 2 uint32 {} {} {}", x.doc_idx.size(), n + 1, n, n * (n - 1) / 2,
                                 x.sample_idx[static_cast<std::size_t>(2 * n)])) != std::string::npos);
  }
  SECTION("a corrupt or wrong file is rebuilt (with a warning naming it), equal, and written back whole") {
    for (int k = 0; k < 3; ++k)
      for (const std::size_t keep : {std::size_t{0}, std::size_t{9}, std::size_t{200}}) {
        const std::string& path = first.cache_paths()[static_cast<std::size_t>(k)];
        auto bytes = test::read_bytes(path);
        bytes.resize(std::min(keep, bytes.size()));
        test::write_bytes(path, bytes);
        const GptDataset again(data, 10, 110, cached_options());
        REQUIRE(!again.indices_from_cache());
        REQUIRE(again.indices_written());
        REQUIRE(same_indices(again.indices(), fresh.indices()));
        REQUIRE(GptDataset(data, 10, 110, cached_options()).indices_from_cache());
      }
    // Valid .npy files, wrong content: a document outside the range, a shuffle that is no permutation,
    // a missing file.
    std::vector<std::int32_t> doc_idx = fresh.indices().doc_idx;
    doc_idx[3] = 5;
    write_npy(first.cache_paths()[0], doc_idx.data(), NpyDtype::i4, {static_cast<std::int64_t>(doc_idx.size())});
    REQUIRE(!GptDataset(data, 10, 110, cached_options()).indices_from_cache());
    std::vector<std::int64_t> shuffle = fresh.indices().shuffle_idx;
    shuffle[0] = shuffle[1];
    write_npy(first.cache_paths()[2], shuffle.data(), NpyDtype::i8, {static_cast<std::int64_t>(shuffle.size())});
    REQUIRE(!GptDataset(data, 10, 110, cached_options()).indices_from_cache());
    fs::remove(first.cache_paths()[1]);
    const GptDataset again(data, 10, 110, cached_options());
    REQUIRE(!again.indices_from_cache());
    REQUIRE(same_indices(again.indices(), fresh.indices()));
    // int64 files (Megatron's type for large datasets) are read as well.
    write_npy(first.cache_paths()[1], fresh.indices().sample_idx.data(), NpyDtype::i8,
              {static_cast<std::int64_t>(fresh.indices().sample_idx.size() / 2), 2});
    const GptDataset wide(data, 10, 110, cached_options());
    REQUIRE(wide.indices_from_cache());
    REQUIRE(same_indices(wide.indices(), fresh.indices()));
  }
  SECTION("a cache older than the data's .idx is rebuilt") {
    for (const auto& p : first.cache_paths())
      fs::last_write_time(p, fs::last_write_time(prefix + ".idx") - std::chrono::hours(1));
    REQUIRE(!GptDataset(data, 10, 110, cached_options()).indices_from_cache());
  }
  SECTION("other settings, other files: samples, seq_length, seed, document range") {
    GptDatasetOptions o = cached_options();
    o.num_samples = 501;
    REQUIRE(GptDataset(data, 10, 110, o).indices_written());
    o = cached_options();
    o.seed = 7;
    REQUIRE(GptDataset(data, 10, 110, o).indices_written());
    REQUIRE(GptDataset(data, 10, 111, cached_options()).indices_written());
    REQUIRE(npy_files(dir.path.string()).size() == 12);
  }
  SECTION("data_cache_path puts them elsewhere; a folder that cannot be written keeps them in memory") {
    const GptDataset elsewhere(data, 10, 110, cached_options(dir / "cache"));
    REQUIRE(elsewhere.indices_written());
    REQUIRE(elsewhere.cache_paths()[0] == dir / ("cache/corpus-" + stable_hash_hex(prefix).substr(0, 8) +
                                                 "_train_indexmap_500ns_32sl_1234s_doc_idx_10-110docs.npy"));
    REQUIRE(npy_files(dir / "cache").size() == 3);
    test::write_text(dir / "a_file", "x");
    const GptDataset in_memory(data, 10, 110, cached_options(dir / "a_file/below"));  // a file where the folder should be
    REQUIRE(!in_memory.indices_written());
    REQUIRE(!in_memory.indices_from_cache());
    REQUIRE(same_indices(in_memory.indices(), fresh.indices()));
  }
  SECTION("threads (as ranks) opening at once: one builds, the others wait and read its files") {
    std::vector<std::unique_ptr<GptDataset>> made(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < made.size(); ++t)
      threads.emplace_back([&, t] { made[t] = std::make_unique<GptDataset>(data, 10, 110, cached_options(dir / "race")); });
    for (auto& t : threads) t.join();
    int built = 0;
    for (const auto& d : made) {
      built += d->indices_written();
      REQUIRE(same_indices(d->indices(), fresh.indices()));
    }
    REQUIRE(built == 1);
  }
}

TEST_CASE("GPT indices: a changed split gets other files; a read-only data folder works uncached", "[unit]") {
  TempDir dir;
  const std::string prefix = write_corpus(dir, "corpus");
  auto data = std::make_shared<const IndexedDataset>(prefix);
  const auto a = build_gpt_splits(data, "90,10,0", {300, 30, 0}, cached_options());
  REQUIRE(a[0]->indices_written());
  REQUIRE(a[0]->cache_paths()[0] == prefix + "_train_indexmap_300ns_32sl_1234s_doc_idx_0-108docs.npy");
  REQUIRE(a[1]->cache_paths()[0] == prefix + "_valid_indexmap_30ns_32sl_1234s_doc_idx_108-120docs.npy");
  REQUIRE(a[2]->cache_paths().empty());  // no documents
  const auto again = build_gpt_splits(data, "90,10,0", {300, 30, 0}, cached_options());
  REQUIRE((again[0]->indices_from_cache() && again[1]->indices_from_cache()));
  // Megatron's names alone would be the same for "80,20,0": the document range tells them apart.
  const auto b = build_gpt_splits(data, "80,20,0", {300, 30, 0}, cached_options());
  REQUIRE((!b[0]->indices_from_cache() && b[0]->indices_written() && !b[1]->indices_from_cache()));
  REQUIRE(b[0]->cache_paths()[0] == prefix + "_train_indexmap_300ns_32sl_1234s_doc_idx_0-96docs.npy");
  REQUIRE(!same_indices(a[0]->indices(), b[0]->indices()));

  // A read-only folder (root ignores the mode, so there a file stands where the folder should be).
  const std::string ro = dir / "ro";
  fs::create_directories(ro);
  const std::string ro_prefix = write_corpus(dir, "ro/corpus");
  ::chmod(ro.c_str(), 0555);
  auto ro_data = std::make_shared<const IndexedDataset>(ro_prefix);
  const auto c = build_gpt_splits(ro_data, "90,10,0", {300, 30, 0}, cached_options());
  if (::geteuid() != 0) {
    REQUIRE(!c[0]->indices_written());
    REQUIRE(npy_files(ro).empty());
  }
  REQUIRE(same_indices(c[0]->indices(), a[0]->indices()));  // another file, the same contents: the same indices
  ::chmod(ro.c_str(), 0755);
}

TEST_CASE("blending indices: cached by a name from the weights, prefixes, size and seed; reused; rebuilt when corrupt",
          "[unit]") {
  TempDir dir;
  class Sized : public Dataset {
   public:
    explicit Sized(std::int64_t n) : n_(n) {}
    std::int64_t size() const override { return n_; }
    void sample(std::int64_t, const SampleView&) const override {}

   private:
    std::int64_t n_;
  };
  const std::vector<std::shared_ptr<const Dataset>> parts = {std::make_shared<Sized>(400), std::make_shared<Sized>(700),
                                                             std::make_shared<Sized>(100)};
  const std::vector<double> w = {0.3, 0.6, 0.1};
  const std::vector<std::string> names = {"/d/a", "/d/b", "/d/c"};
  const std::string stem = blending_cache_stem(dir.path.string(), "train", w, names, 1000, 1234);
  REQUIRE(fs::path(stem).filename().string().starts_with("blend_"));
  REQUIRE(stem.ends_with("_train_1000ns_1234s"));
  REQUIRE(blending_cache_stem(dir.path.string(), "train", {0.3, 0.5, 0.2}, names, 1000, 1234) != stem);
  REQUIRE(blending_cache_stem(dir.path.string(), "train", w, {"/d/a", "/d/b", "/d/x"}, 1000, 1234) != stem);
  REQUIRE(blending_cache_stem(dir.path.string(), "train", w, names, 1000, 1234) == stem);

  const BlendingIndices fresh = build_blending_indices(w, 1000);
  const BlendedDataset first(parts, w, 1000, names, stem);
  REQUIRE(!first.indices_from_cache());
  REQUIRE(first.cache_paths() == std::vector<std::string>{stem + "_dataset_index.npy", stem + "_dataset_sample_index.npy"});
  const BlendedDataset second(parts, w, 1000, names, stem);
  REQUIRE(second.indices_from_cache());
  REQUIRE(second.indices().dataset_index == fresh.dataset_index);
  REQUIRE(second.indices().dataset_sample_index == fresh.dataset_sample_index);
  REQUIRE(second.indices().counts == fresh.counts);
  const std::string out = test::run_command(
      {"/usr/bin/python3", "-c",
       "import sys, numpy as np; a = np.load(sys.argv[1]); b = np.load(sys.argv[2]); "
       "print(a.dtype, a.shape[0], b.dtype, b.shape[0], np.bincount(a).tolist())",
       first.cache_paths()[0], first.cache_paths()[1]});
  REQUIRE(out.find(fmt::format("uint8 1000 int64 1000 [{}, {}, {}]", fresh.counts[0], fresh.counts[1],
                               fresh.counts[2])) != std::string::npos);

  // Corrupt: truncated, or a sample index out of order; rebuilt and written back.
  auto bytes = test::read_bytes(first.cache_paths()[0]);
  bytes.resize(100);
  test::write_bytes(first.cache_paths()[0], bytes);
  REQUIRE(!BlendedDataset(parts, w, 1000, names, stem).indices_from_cache());
  REQUIRE(BlendedDataset(parts, w, 1000, names, stem).indices_from_cache());
  std::vector<std::int64_t> sample_index = fresh.dataset_sample_index;
  sample_index[5] += 1;
  write_npy(first.cache_paths()[1], sample_index.data(), NpyDtype::i8, {1000});
  const BlendedDataset again(parts, w, 1000, names, stem);
  REQUIRE(!again.indices_from_cache());
  REQUIRE(again.indices().dataset_sample_index == fresh.dataset_sample_index);
  // No stem: not cached.
  REQUIRE(BlendedDataset(parts, w, 1000, names).cache_paths().empty());
}

namespace {

PluginPtr<DataSource> make_source(const std::string& data_toml) {
  DataRequest r;
  r.seq_length = 16;
  r.seed = 1234;
  r.num_samples[0] = 200;
  r.num_samples[1] = 20;
  r.eod_token = 0;
  r.vocab_size = 1000;
  return test::make_data_source("gpt_indexed", data_toml, r, "c.toml");
}

}  // namespace

TEST_CASE("the gpt_indexed plugin caches beside the data, or in data.data_cache_path, blends included", "[unit]") {
  TempDir dir;
  const std::string a = write_corpus(dir, "a"), b = write_corpus(dir, "b");
  {
    auto s = make_source(fmt::format("data_path = \"{}\"\nsplit = \"90,10,0\"\n", a));
    call_plugin(s, [](DataSource& d) { d.open(); });
    REQUIRE(npy_files(dir.path.string()) ==
            std::vector<std::string>{"a_train_indexmap_200ns_16sl_1234s_doc_idx_0-108docs.npy",
                                     "a_train_indexmap_200ns_16sl_1234s_sample_idx_0-108docs.npy",
                                     "a_train_indexmap_200ns_16sl_1234s_shuffle_idx_0-108docs.npy",
                                     "a_valid_indexmap_20ns_16sl_1234s_doc_idx_108-120docs.npy",
                                     "a_valid_indexmap_20ns_16sl_1234s_sample_idx_108-120docs.npy",
                                     "a_valid_indexmap_20ns_16sl_1234s_shuffle_idx_108-120docs.npy"});
  }
  const std::string cache = dir / "cache";
  auto blend = [&] {
    auto s = make_source(fmt::format("data_path = [\"0.4\", \"{}\", \"0.6\", \"{}\"]\nsplit = \"90,10,0\"\n"
                                     "data_cache_path = \"{}\"\n", a, b, cache));
    call_plugin(s, [](DataSource& d) { d.open(); });
    return s;
  };
  auto first = blend();
  const auto files = npy_files(cache);
  REQUIRE(files.size() == 2 * 2 * 3 + 2 * 2);  // two prefixes × two splits × three arrays, two blends × two arrays
  REQUIRE(std::count_if(files.begin(), files.end(), [](const std::string& f) { return f.starts_with("blend_"); }) == 4);
  auto second = blend();
  const auto* t1 = dynamic_cast<const BlendedDataset*>(&first->split(Split::train));
  const auto* t2 = dynamic_cast<const BlendedDataset*>(&second->split(Split::train));
  REQUIRE((t1 && t2));
  REQUIRE(!t1->indices_from_cache());
  REQUIRE(t2->indices_from_cache());
  REQUIRE(t2->indices().dataset_index == t1->indices().dataset_index);
  REQUIRE(static_cast<const GptDataset&>(*t2->datasets()[0]).indices_from_cache());
  REQUIRE(npy_files(cache) == files);
}
