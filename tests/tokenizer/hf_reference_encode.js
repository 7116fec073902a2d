// Encodes files with Hugging Face's tokenizer.json reader in JavaScript (@huggingface/tokenizers, the
// tokenizer code that the npm package @huggingface/transformers 4.x bundles) and prints, per file, one
// JSON line {"ids": [...], "decoded": "..."}, so the C++ tests compare ids and decode with it.
// usage: node hf_reference_encode.js PACKAGE_DIR TOKENIZER_JSON FILE...
//
// One deliberate patch: tokenizers.js's Digits pre-tokenizer splits on JS's \d, which is ASCII 0-9
// only, while Hugging Face's Rust tokenizers (which trained StarCoder, and which Python's transformers
// and Megatron-LM's TokenizerFromFile run) split on char::is_numeric, the general category N. The
// patch gives Digits that class (\p{N}); nothing else is changed. Decoding asks for no clean-up of
// spaces (clean_up_tokenization_spaces = false): the ByteLevel decoder alone, as the Rust decoder.
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.resolve(process.argv[2], 'dist', 'tokenizers.cjs'));
const tokenizerJson = JSON.parse(fs.readFileSync(process.argv[3], 'utf-8'));
const tokenizer = new Tokenizer(tokenizerJson, { clean_up_tokenization_spaces: false });

function patchDigits(pt) {
  if (!pt) return;
  if (Array.isArray(pt.tokenizers)) pt.tokenizers.forEach(patchDigits);
  if (pt.config && pt.config.type === 'Digits')
    pt.pattern = new RegExp(pt.config.individual_digits ? '[^\\p{N}]+|\\p{N}' : '[^\\p{N}]+|\\p{N}+', 'gu');
}
patchDigits(tokenizer.pre_tokenizer);

for (const file of process.argv.slice(4)) {
  const text = fs.readFileSync(file, 'utf-8');
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
  const decoded = tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  process.stdout.write(JSON.stringify({ ids, decoded }) + '\n');
}
