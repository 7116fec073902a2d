// The reference side of benchmarks/tokenizer_throughput.sh: encodes every file named on stdin (one path
// a line, each file one document) with @huggingface/tokenizers (the tokenizer code that the npm package
// @huggingface/transformers bundles) and prints documents, bytes, tokens and seconds as one JSON line.
// usage: node hf_tokenizers_js_throughput.js PACKAGE_DIR TOKENIZER_JSON < file-list
// Timed: encoding only (files are read first; loading the tokenizer is timed apart).
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.resolve(process.argv[2], 'dist', 'tokenizers.cjs'));
const t0 = process.hrtime.bigint();
const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(process.argv[3], 'utf-8')), {});
const loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
const files = fs.readFileSync(0, 'utf-8').split('\n').filter(Boolean);
const texts = files.map(f => fs.readFileSync(f, 'utf-8'));
let bytes = 0, tokens = 0;
const t1 = process.hrtime.bigint();
for (const text of texts) {
  tokens += tokenizer.encode(text, { add_special_tokens: false }).ids.length;
  bytes += Buffer.byteLength(text, 'utf-8');
}
const seconds = Number(process.hrtime.bigint() - t1) / 1e9;
process.stdout.write(JSON.stringify({ documents: texts.length, bytes, tokens, seconds, load_seconds: loadSeconds }) + '\n');
