// Hand-written equivalents of the pre-tokenizer split patterns (see core/tokenizer.h). Each
// pattern is an ordered alternation that matches at every position (every character is \s,
// \p{L}, \p{N} or none of these), so splitting is: at position i take the first alternative that
// matches, emit [i, end), continue at end. Works on decoded characters; offsets are bytes.
#include <vector>

#include "core/tokenizer.h"
#include "core/unicode_tables.h"

namespace twinfer {

namespace {

using unicode::CharClass;

struct Ch {
  uint32_t off;  // byte offset in the text
  char32_t cp;
  CharClass cls;
};

bool is_nl(char32_t cp) { return cp == '\r' || cp == '\n'; }

char32_t ascii_lower(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S case-folds to 's' under (?i)
  return cp;
}

class Splitter {
 public:
  Splitter(std::string_view text, std::vector<Ch>& chars,
           std::vector<std::pair<uint32_t, uint32_t>>& out)
      : text_(text), c_(chars), out_(out) {
    c_.clear();
    for (size_t i = 0; i < text.size();) {
      auto u = unicode::decode_utf8(text, i);
      c_.push_back({static_cast<uint32_t>(i), u.cp, unicode::classify(u.cp)});
      i += u.len;
    }
    n_ = c_.size();
  }

  void gpt2() {
    for (size_t i = 0; i < n_;) i = emit(i, gpt2_at(i));
  }
  void llama3(size_t max_digits) {
    for (size_t i = 0; i < n_;) i = emit(i, llama3_at(i, max_digits));
  }
  void digits(bool individual) {
    for (size_t i = 0; i < n_;) {
      size_t end;
      if (c_[i].cls == CharClass::number)
        end = individual ? i + 1 : run(i, CharClass::number);
      else
        for (end = i + 1; end < n_ && c_[end].cls != CharClass::number;) ++end;
      i = emit(i, end);
    }
  }

 private:
  std::string_view text_;
  std::vector<Ch>& c_;
  std::vector<std::pair<uint32_t, uint32_t>>& out_;
  size_t n_ = 0;

  size_t emit(size_t a, size_t b) {
    const uint32_t end = b < n_ ? c_[b].off : static_cast<uint32_t>(text_.size());
    out_.emplace_back(c_[a].off, end);
    return b;
  }
  size_t run(size_t i, CharClass k) const {
    while (i < n_ && c_[i].cls == k) ++i;
    return i;
  }
  bool is(size_t i, CharClass k) const { return i < n_ && c_[i].cls == k; }

  // 's 't 're 've 'm 'll 'd; returns the end or 0.
  size_t contraction(size_t i, bool fold) const {
    if (c_[i].cp != '\'' || i + 1 >= n_) return 0;
    auto low = [&](size_t k) { return fold ? ascii_lower(c_[k].cp) : c_[k].cp; };
    const char32_t a = low(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 >= n_) return 0;
    const char32_t b = low(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
  }

  // \s+(?!\S)|\s+ at a whitespace character: the run, less its last character when a
  // non-space follows and the run is longer than one.
  size_t trailing_space(size_t i) const {
    const size_t j = run(i, CharClass::space);
    return (j == n_ || j - i == 1) ? j : j - 1;
  }

  size_t gpt2_at(size_t i) const {
    if (size_t e = contraction(i, false)) return e;
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: at most one applies, by the class of the
    // first non-optional character.
    const size_t s = (c_[i].cp == ' ' && i + 1 < n_ && c_[i + 1].cls != CharClass::space) ? i + 1 : i;
    if (c_[s].cls != CharClass::space) return run(s, c_[s].cls);
    return trailing_space(i);
  }

  size_t llama3_at(size_t i, size_t max_digits) const {
    if (size_t e = contraction(i, true)) return e;
    const CharClass k = c_[i].cls;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (k == CharClass::letter) return run(i, k);
    if (k != CharClass::number && !is_nl(c_[i].cp) && is(i + 1, CharClass::letter))
      return run(i + 1, CharClass::letter);
    // \p{N}{1,max_digits}
    if (k == CharClass::number) {
      size_t e = i + 1;
      while (e < n_ && e - i < max_digits && c_[e].cls == CharClass::number) ++e;
      return e;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    const size_t s = (c_[i].cp == ' ' && is(i + 1, CharClass::other)) ? i + 1 : i;
    if (c_[s].cls == CharClass::other) {
      size_t e = run(s, CharClass::other);
      while (e < n_ && is_nl(c_[e].cp)) ++e;
      return e;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
    const size_t j = run(i, CharClass::space);
    for (size_t e = j; e > i; --e)
      if (is_nl(c_[e - 1].cp)) return e;
    return trailing_space(i);
  }
};

}  // namespace

void split_pieces(SplitRule rule, std::string_view text,
                  std::vector<std::pair<uint32_t, uint32_t>>& out) {
  thread_local std::vector<Ch> chars;
  Splitter sp(text, chars, out);
  switch (rule) {
    case SplitRule::gpt2: sp.gpt2(); break;
    case SplitRule::llama3: sp.llama3(3); break;
    case SplitRule::qwen2: sp.llama3(1); break;
    case SplitRule::digits_individual: sp.digits(true); break;
    case SplitRule::digits_grouped: sp.digits(false); break;
  }
}

}  // namespace twinfer
