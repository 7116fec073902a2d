// Text → tokens → Megatron indexed dataset (<output_prefix>.bin / .idx), the engine behind
// `tessera preprocess`.
//
// Inputs are files or folders (walked recursively, sorted, filtered by extension). Without
// json_key every file is one document (plain text or source code); with json_key every non-blank
// line of every file is a JSON object whose json_key string is one document (JSONL, as Megatron's
// preprocess_data.py reads). Documents are tokenised by `workers` threads but written in input
// order, so the output is byte-identical for any number of workers. Each document gets the EOD
// token appended (append_eod) and is one sequence; documents that tokenise to nothing are skipped,
// as Megatron skips them.
//
// Megatron names its output <prefix>_<key>_document.bin/.idx; Tessera writes exactly
// <output_prefix>.bin and <output_prefix>.idx (pass that prefix as Megatron's data path).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/tokenizer.hpp"

namespace tessera {

struct PreprocessOptions {
  std::vector<std::string> inputs;       // files and/or folders
  std::vector<std::string> include_ext;  // for folders: keep files ending in these (".py"); empty = all
  std::string json_key;                  // non-empty: inputs are JSONL
  std::string output_prefix;
  bool append_eod = true;
  int workers = 1;
  bool progress = true;                  // progress bar on stderr
};

struct PreprocessStats {
  std::int64_t files = 0;
  std::int64_t documents = 0;      // written
  std::int64_t empty_skipped = 0;  // documents with no tokens
  std::int64_t tokens = 0;         // written, EODs included
  std::int64_t input_bytes = 0;
  double seconds = 0;
};

// Lists the input files in processing order (FormatError naming a path that does not exist).
std::vector<std::string> list_preprocess_inputs(const PreprocessOptions& options);

// Throws FormatError naming file and line for unreadable input, invalid JSON or a missing key.
// On error nothing is replaced: an existing <output_prefix>.bin/.idx stays as it was.
PreprocessStats preprocess(const Tokenizer& tokenizer, const PreprocessOptions& options);

}  // namespace tessera
