// Encodes files with the gpt-3-encoder npm package (a JS port of OpenAI's GPT-2 encoder.py) and
// prints one JSON array of ids per file, so the C++ test can compare ids.
// usage: node gpt2_reference_encode.js PACKAGE_DIR FILE...
// The package's encode() concatenates arrays quadratically, so a file is fed to it in chunks of
// whole pre-tokenizer matches (the same regex): matches never depend on text past their end except
// for one character of lookahead that a chunk boundary after a whole match does not change.
const fs = require('fs');
const path = require('path');
const { encode } = require(path.join(process.argv[2], 'Encoder.js'));
const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
for (const file of process.argv.slice(3)) {
  const text = fs.readFileSync(file, 'utf-8');
  const matches = Array.from(text.matchAll(pat)).map(m => m[0]);
  if (matches.join('') !== text) throw new Error(`${file}: the regex does not cover the text`);
  const ids = [];
  for (let i = 0; i < matches.length; i += 256)
    for (const id of encode(matches.slice(i, i + 256).join(''))) ids.push(id);
  process.stdout.write(JSON.stringify(ids) + '\n');
}
