// The sentence splitter of `tessera preprocess --split-sentences` (apps/tessera/sentence_splitter.hpp):
// each of its documented rules, the cases they leave alone, and real text whose sentences are cut
// only where the rules say.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sentence_splitter.hpp"
#include "test_util.hpp"

using tessera::app::split_sentences;
using V = std::vector<std::string>;

namespace {

V split(std::string_view text) {
  V out;
  for (std::string_view s : split_sentences(text)) out.emplace_back(s);
  return out;
}

}  // namespace

TEST_CASE("sentence splitter: terminators, closing quotes and what may start a sentence", "[unit]") {
  CHECK(split("Hello world. This is a test.") == V{"Hello world.", "This is a test."});
  CHECK(split("Is it? Yes! Sure.") == V{"Is it?", "Yes!", "Sure."});
  CHECK(split("Wait... What?! Oh.") == V{"Wait...", "What?!", "Oh."});
  CHECK(split("He said \"Stop.\" Then he left.") == V{"He said \"Stop.\"", "Then he left."});
  CHECK(split("(See below.) Next one.") == V{"(See below.)", "Next one."});
  CHECK(split("It ended. \"Why?\" she asked.") == V{"It ended.", "\"Why?\" she asked."});
  CHECK(split("He won in 1999. 2000 was worse.") == V{"He won in 1999.", "2000 was worse."});
  CHECK(split("Fin. Élan is French. Ωmega. Москва.") == V{"Fin.", "Élan is French.", "Ωmega.", "Москва."});
  CHECK(split("Он ушёл.Всё") == V{"Он ушёл.Всё"});  // no white space, no split
  // Not a sentence start: lower case, no white space after the terminator, end of text.
  CHECK(split("Yahoo! is a company. version 3.14 is out.") == V{"Yahoo! is a company. version 3.14 is out."});
  CHECK(split("see example.com or a.b.c.d for details") == V{"see example.com or a.b.c.d for details"});
}

TEST_CASE("sentence splitter: abbreviations, initials, dotted words and enumerators do not end sentences", "[unit]") {
  CHECK(split("Mr. Smith met Dr. Jones. They talked.") == V{"Mr. Smith met Dr. Jones.", "They talked."});
  CHECK(split("Apples, pears, etc. And more.") == V{"Apples, pears, etc. And more."});
  CHECK(split("J. R. R. Tolkien wrote it. It sold.") == V{"J. R. R. Tolkien wrote it.", "It sold."});
  CHECK(split("Use e.g. This one, i.e. The best. Fine.") == V{"Use e.g. This one, i.e. The best.", "Fine."});
  CHECK(split("The U.S. Army came. See Fig. 3 and (cf. Table 2).") ==
        V{"The U.S. Army came.", "See Fig. 3 and (cf. Table 2)."});
  CHECK(split("1. Definitions. The terms follow.\n  2. Scope. It applies.") ==
        V{"1. Definitions.", "The terms follow.", "2. Scope.", "It applies."});
  // An enumerator only at the start of a line; a number ending a sentence elsewhere still ends it.
  CHECK(split("We counted 12. Then we stopped.") == V{"We counted 12.", "Then we stopped."});
  // Ordinary words that look like abbreviations are not treated as ones.
  CHECK(split("The answer is no. We left.") == V{"The answer is no.", "We left."});
}

TEST_CASE("sentence splitter: blank lines, wrapped lines, CJK full stops, white space and empty input", "[unit]") {
  CHECK(split("Title\n\nFirst paragraph\nwrapped here. Second sentence.\n \t\r\nLast") ==
        V{"Title", "First paragraph\nwrapped here.", "Second sentence.", "Last"});
  CHECK(split("a\r\n\r\nb\n\n\n\nc") == V{"a", "b", "c"});
  CHECK(split("今天天气很好。我们去公园吧！好的？」是。") == V{"今天天气很好。", "我们去公园吧！", "好的？」", "是。"});
  CHECK(split("  padded sentence.   Next.  ") == V{"padded sentence.", "Next."});
  CHECK(split("") == V{});
  CHECK(split(" \n\n\t \n") == V{});
  CHECK(split("no terminator at all") == V{"no terminator at all"});
  CHECK(split("...") == V{"..."});
  CHECK(split("\xff\xfe. Broken \xc3 bytes.") == V{"\xff\xfe.", "Broken \xc3 bytes."});  // bytes kept as they are
}

TEST_CASE("sentence splitter: a licence text keeps every byte and splits at its sentences", "[unit]") {
  const std::string text = tessera::test::read_text("/usr/share/common-licenses/Apache-2.0");
  const auto sentences = split_sentences(text);
  REQUIRE(sentences.size() > 50);
  // Sentences are views into the text, in order, without overlaps, and only white space between.
  std::size_t pos = 0, non_space = 0;
  for (std::string_view s : sentences) {
    const auto at = static_cast<std::size_t>(s.data() - text.data());
    REQUIRE(at >= pos);
    for (std::size_t i = pos; i < at; ++i) REQUIRE(std::string(" \t\r\n\f\v").find(text[i]) != std::string::npos);
    pos = at + s.size();
    non_space += s.size();
  }
  CHECK(non_space > text.size() * 8 / 10);
  // One of its sentences, across a wrapped line, comes out whole.
  const std::string wanted =
      "\"License\" shall mean the terms and conditions for use, reproduction,\n      and distribution as defined by "
      "Sections 1 through 9 of this document.";
  CHECK(std::find(sentences.begin(), sentences.end(), wanted) != sentences.end());
}
