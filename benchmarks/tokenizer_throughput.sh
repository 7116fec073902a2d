#!/usr/bin/env bash
# tokenizer.json encoding throughput: Tessera's hf_tokenizer (through `tessera preprocess`, which logs
# documents/s and MB/s) against @huggingface/tokenizers in Node (the tokenizer code of the npm package
# @huggingface/transformers) on the same corpus: by default every .py file of Python's standard library
# (/usr/lib/python3.11), one document per file, with the StarCoder-shaped tokenizer.json the tests build.
#
#   benchmarks/tokenizer_throughput.sh [BUILD_DIR] [TOKENIZER_JSON] [CORPUS_DIR]
#
# BUILD_DIR defaults to build/ (it needs the targets tessera, tessera_tokenizer_hf and
# tessera_hf_tokenizer_json); WORKERS (default 1) sets preprocess's threads. Both sides count only
# encoding: preprocess's figure includes reading the files and writing the .bin/.idx, the JS figure
# reads the files before its clock starts. docs/benchmarks.md records the figures.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${1:-$root/build}"
tokenizer_json="${2:-$build/share/hf_tokenizer/starcoder.json}"
corpus="${3:-/usr/lib/python3.11}"
workers="${WORKERS:-1}"
js="$root/third_party/node_modules/@huggingface/tokenizers"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

find "$corpus" -name '*.py' -type f | LC_ALL=C sort > "$work/files"
echo "corpus: $(wc -l < "$work/files") .py files under $corpus (regular files, not links), $(xargs -d '\n' cat < "$work/files" | wc -c) bytes"
echo "tokenizer: $tokenizer_json"

echo "--- Tessera hf_tokenizer (tessera preprocess, $workers worker(s), no EOD appended)"
mapfile -t files < "$work/files"
TESSERA_PLUGIN_PATH="$build/lib/tessera" "$build/bin/tessera" preprocess --no-progress --input "${files[@]}" \
  --tokenizer hf_tokenizer --tokenizer-file "$tokenizer_json" --workers "$workers" --no-append-eod \
  --output-prefix "$work/out" 2>&1 | grep -E 'documents|tokens' || true

echo "--- @huggingface/tokenizers $(node -p "require('$js/package.json').version") (node $(node --version), one thread)"
node "$here/hf_tokenizers_js_throughput.js" "$js" "$tokenizer_json" < "$work/files" | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf-8"));
  console.log(`${r.documents} documents, ${r.tokens} tokens from ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(2)} s: ` +
              `${(r.documents / r.seconds).toFixed(0)} documents/s, ${(r.tokens / r.seconds / 1e6).toFixed(2)} M tokens/s, ` +
              `${(r.bytes / 1e6 / r.seconds).toFixed(2)} MB/s (load ${r.load_seconds.toFixed(2)} s)`);'
