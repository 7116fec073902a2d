// The rule-based sentence splitter behind `tessera preprocess --split-sentences` (Megatron-LM uses
// NLTK's punkt, a trained model; these rules need no data and give the same splits on ordinary
// prose). The rules, exactly (docs/preprocess.md repeats them):
//   1. A blank line (a line break, only spaces/tabs, another line break) always ends a sentence. A
//      single line break is white space: hard-wrapped paragraphs stay whole.
//   2. A run of ASCII terminators . ! ? (any mix, e.g. "...", "?!"), followed by any closing quotes or
//      brackets ) ] } " ' ” ’ », ends a sentence when white space follows and then a sentence start:
//      an ASCII capital or digit, a capital of Latin-1 (À-Þ), Greek (Α-Ω) or Cyrillic (Ѐ-Я), or an
//      opening quote or bracket ( [ { " ' ` “ ‘ « ¿ ¡.
//   3. Rule 2 does not apply when the run is a single "." ending a word (what precedes it back to
//      white space, opening quotes/brackets removed) that is:
//        - a known abbreviation, case-insensitively: Mr Mrs Ms Dr Prof St Jr Sr vs etc al cf ca approx
//          fig figs eq vol vols pp ch sec ed eds rev inc ltd co corp dept gov jan feb mar apr jun jul
//          aug sep sept oct nov dec viz;
//        - a single letter (an initial: "J. R. R. Tolkien");
//        - a word with a "." inside ("e.g", "i.e", "U.S");
//        - a number of one to three digits that is the first word of its line (an enumerator: "1.").
//   4. The CJK full stops 。！？ (and closing 」』）”’ after them) end a sentence wherever they are.
// Sentences are returned without the white space around them (ASCII white space); empty ones are
// dropped. Numbers such as 3.14 never split: the "." is not followed by white space.
#pragma once
#include <string_view>
#include <vector>

namespace tessera::app {

// The sentences of `text`, as views into it, in order.
std::vector<std::string_view> split_sentences(std::string_view text);

}  // namespace tessera::app
