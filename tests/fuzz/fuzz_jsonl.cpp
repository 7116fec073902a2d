// JSONL input of `tessera preprocess` (Megatron's preprocess_data.py format): each mutated file is
// preprocessed with the byte tokenizer and the dataset it writes is read back whole. Seeds: a few
// documents with escapes, unicode, empty and non-string values of other keys.
#include "fuzz_harness.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/tools/preprocess.hpp"
#include "make_tokenizer.hpp"
#include "tessera/tokenizer.hpp"
#include "test_util.hpp"

using namespace tessera;

TEST_CASE("fuzz: JSONL preprocess input", "[fuzz]") {
  test::TempDir dir;
  fuzz::FuzzTarget t;
  t.name = "jsonl";
  t.seeds = {
      "{\"text\": \"def f(x):\\n    return x\\n\", \"meta\": {\"lang\": \"python\", \"stars\": 3}}\n"
      "{\"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"quoted\\\" \\t tab\"}\n\n"
      "{\"id\": 7, \"text\": \"\"}\n",
      "{\"text\": \"one\"}\r\n{\"text\": \"two\", \"extra\": [1, 2.5, null, true]}\r\n",
  };
  const auto tokenizer = test::make_tokenizer("byte");
  const std::string input = dir / "in.jsonl";
  t.parse = [&](const fuzz::Bytes& bytes) {
    fuzz::write_file_bytes(input, bytes);
    PreprocessOptions o;
    o.inputs = {input};
    o.json_key = "text";
    o.output_prefix = dir / "out";
    o.progress = false;
    const PreprocessStats stats = preprocess(*tokenizer, o);
    const IndexedDataset ds(dir / "out");
    std::int64_t tokens = 0;
    for (std::int64_t i = 0; i < ds.num_sequences(); ++i) tokens += static_cast<std::int64_t>(ds.sequence_int32(i).size());
    if (tokens != stats.tokens) throw std::logic_error("the dataset read back does not hold the tokens written");
  };
  t.iterations = 3000;
  fuzz::run_fuzz(t);
}
