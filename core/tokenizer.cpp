// Byte-level BPE: table finishing, encoding (special-token matching, pre-tokenizer stages, BPE
// merges with a per-word cache) and decoding. Loaders are in core/tokenizer_load.cpp.
#include <algorithm>
#include <functional>
#include <stdexcept>

#include "core/error.h"
#include "core/tokenizer.h"
#include "core/tokenizer_impl.h"
#include "core/unicode_tables.h"

namespace twinfer {

namespace {

struct ByteTables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // code points < 0x144 cover every mapped character
  ByteTables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}

// HF's ByteLevel decoder: a token whose every character is a mapped byte becomes those bytes;
// any other token (special tokens with spaces, say) is emitted as its own UTF-8 text.
bool byte_level_bytes(std::string_view tok, std::string& out) {
  out.clear();
  for (size_t i = 0; i < tok.size();) {
    const auto u = unicode::decode_utf8(tok, i);
    const int b = byte_of_char(u.cp);
    if (b < 0 || (u.cp == 0xFFFD && u.len == 1)) return false;
    out.push_back(static_cast<char>(b));
    i += u.len;
  }
  return true;
}

bool is_word_char(char32_t cp) {
  const auto k = unicode::classify(cp);
  return cp == '_' || k == unicode::CharClass::letter || k == unicode::CharClass::number;
}

// Start of the UTF-8 character that ends just before byte `i`.
size_t prev_char_start(std::string_view s, size_t i) {
  size_t k = i - 1;
  while (k > 0 && i - k < 4 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  return unicode::decode_utf8(s, k).len == i - k ? k : i - 1;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return byte_tables().to_char[b]; }

int byte_of_char(char32_t cp) {
  return cp < byte_tables().to_byte.size() ? byte_tables().to_byte[cp] : -1;
}

void Tokenizer::Impl::finish(const std::vector<std::pair<std::string, std::string>>& merge_pairs) {
  const size_t n = text.size();
  bytes.assign(n, std::string());
  special.resize(n, 0);
  for (size_t id = 0; id < n; ++id) {
    if (!present[id]) continue;
    if (!byte_level_bytes(text[id], bytes[id])) bytes[id] = text[id];
    // Duplicate spellings (possible in GGUF files) resolve to the lowest id, as lookups do.
    by_text.emplace(text[id], static_cast<int32_t>(id));
    if (ignore_merges && !special[id]) by_bytes.emplace(bytes[id], static_cast<int32_t>(id));
  }
  // Vocabularies trained on UTF-8 text may lack bytes that never occur in it (SmolLM2 has no
  // 0xC0, 0xF5..0xFF nor a few control bytes); such bytes become unk, or vanish as in HF.
  int mapped = 0;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, byte_to_char(static_cast<uint8_t>(b)));
    auto it = by_text.find(s);
    byte_id[b] = (it == by_text.end() || special[it->second]) ? -1 : it->second;
    mapped += byte_id[b] >= 0;
  }
  if (mapped == 0)
    throw ConfigError(source + ": no byte-level token (such as \"a\" or \"\u0120\" for a space) "
                      "in the vocabulary; only byte-level BPE is supported");
  merges.reserve(merge_pairs.size());
  for (size_t r = 0; r < merge_pairs.size(); ++r) {
    const auto& [a, b] = merge_pairs[r];
    auto ia = by_text.find(a), ib = by_text.find(b), iab = by_text.find(a + b);
    if (ia == by_text.end() || ib == by_text.end() || iab == by_text.end()) {
      const std::string& missing = ia == by_text.end() ? a : ib == by_text.end() ? b : a + b;
      throw ConfigError(source + ": merge " + std::to_string(r) + " \"" + a + " " + b +
                        "\": token \"" + missing + "\" is not in the vocabulary");
    }
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
                         static_cast<uint32_t>(ib->second);
    merges.emplace(key, Merge{static_cast<int32_t>(r), iab->second});  // first rank wins
  }
  for (const auto& s : specials) {
    if (s.content.empty())
      throw ConfigError(source + ": special token " + std::to_string(s.id) + " has empty content");
    special_first[static_cast<unsigned char>(s.content[0])] = 1;
  }
  std::stable_sort(specials.begin(), specials.end(), [](const SpecialToken& x, const SpecialToken& y) {
    return x.content.size() > y.content.size();
  });
}

void Tokenizer::Impl::set_wrapping() {
  prefix_ids.clear();
  suffix_ids.clear();
  if (add_bos && bos >= 0) prefix_ids.push_back(bos);
}

namespace {

struct HeapEntry {
  int32_t rank;
  int32_t pos;  // left symbol
  int32_t left, right;  // ids when pushed; stale entries no longer match
  bool operator>(const HeapEntry& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

// Merges the byte tokens of one word by rank (lowest rank first, leftmost among equals), over a
// doubly linked list of symbols with a lazily invalidated min-heap: O(n log n) per word.
void bpe_merge(const Tokenizer::Impl& t, std::string_view w, std::vector<int32_t>& out) {
  thread_local std::vector<int32_t> id, prev, next;
  thread_local std::vector<HeapEntry> heap;
  id.resize(w.size());
  prev.resize(w.size());
  next.resize(w.size());
  heap.clear();
  int32_t n = 0;
  for (unsigned char c : w) {
    int32_t b = t.byte_id[c];
    if (b < 0) b = t.unk;
    if (b < 0 || (b == t.unk && t.fuse_unk && n > 0 && id[n - 1] == t.unk)) continue;
    id[n++] = b;
  }
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto push_pair = [&](int32_t a) {
    if (a < 0 || next[a] < 0) return;
    const int32_t b = next[a];
    auto it = t.merges.find((static_cast<uint64_t>(static_cast<uint32_t>(id[a])) << 32) |
                            static_cast<uint32_t>(id[b]));
    if (it == t.merges.end()) return;
    heap.push_back({it->second.rank, a, id[a], id[b]});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const HeapEntry e = heap.back();
    heap.pop_back();
    const int32_t a = e.pos, b = next[a];
    // Symbols absorbed into a left neighbour get id -1, so their entries fail here too.
    if (id[a] != e.left || b < 0 || id[b] != e.right) continue;
    const auto key = (static_cast<uint64_t>(static_cast<uint32_t>(e.left)) << 32) |
                     static_cast<uint32_t>(e.right);
    id[a] = t.merges.find(key)->second.id;
    id[b] = -1;
    next[a] = next[b];
    if (next[b] >= 0) prev[next[b]] = a;
    push_pair(prev[a]);
    push_pair(a);
  }
  for (int32_t i = 0; i >= 0 && n > 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace

namespace {

void encode_word(const Tokenizer::Impl& t, std::string_view w, std::vector<int32_t>& out) {
  if (w.size() == 1) {
    const int32_t b = t.byte_id[static_cast<unsigned char>(w[0])];
    if (b >= 0 || t.unk >= 0) out.push_back(b >= 0 ? b : t.unk);
    return;
  }
  const bool cacheable = w.size() <= Tokenizer::Impl::kCacheMaxWord;
  thread_local std::string key;
  if (cacheable) {
    key.assign(w);
    std::lock_guard<std::mutex> lock(t.cache_mu);
    auto it = t.cache.find(key);
    if (it != t.cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  if (t.ignore_merges) {
    auto it = t.by_bytes.find(std::string(w));
    if (it != t.by_bytes.end()) out.push_back(it->second);
  }
  if (out.size() == start) bpe_merge(t, w, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(t.cache_mu);
    if (t.cache.size() >= Tokenizer::Impl::kCacheMax) t.cache.clear();
    t.cache.emplace(key, std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(start), out.end()));
  }
}

// Text between special tokens: pre-tokenizer stages, then BPE per piece.
void encode_segment(const Tokenizer::Impl& t, std::string_view seg, std::vector<int32_t>& out) {
  if (seg.empty()) return;
  using Pieces = std::vector<std::pair<uint32_t, uint32_t>>;
  thread_local Pieces cur, nxt;
  thread_local std::string spaced;
  std::string_view buf = seg;
  cur.assign(1, {0u, static_cast<uint32_t>(seg.size())});
  // HF's ByteLevel(add_prefix_space) prepends ' ' to each piece that reaches it without one;
  // ByteLevel is the last stage, so this happens before its regex (or at the very end).
  const size_t prefix_stage = t.rules.empty() || t.rules.back() != SplitRule::gpt2
                                  ? t.rules.size() : t.rules.size() - 1;
  for (size_t r = 0; r <= t.rules.size(); ++r) {
    if (r == prefix_stage && t.add_prefix_space) {
      spaced.clear();
      nxt.clear();
      for (auto [a, b] : cur) {
        const auto s = static_cast<uint32_t>(spaced.size());
        if (buf[a] != ' ') spaced.push_back(' ');
        spaced.append(buf.substr(a, b - a));
        nxt.emplace_back(s, static_cast<uint32_t>(spaced.size()));
      }
      buf = spaced;
      cur.swap(nxt);
    }
    if (r == t.rules.size()) break;
    nxt.clear();
    for (auto [a, b] : cur) {
      const size_t first = nxt.size();
      split_pieces(t.rules[r], buf.substr(a, b - a), nxt);
      for (size_t k = first; k < nxt.size(); ++k) {
        nxt[k].first += a;
        nxt[k].second += a;
      }
    }
    cur.swap(nxt);
  }
  for (auto [a, b] : cur) encode_word(t, buf.substr(a, b - a), out);
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out.insert(out.end(), t.prefix_ids.begin(), t.prefix_ids.end());
  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    const SpecialToken* hit = nullptr;
    if (t.special_first[static_cast<unsigned char>(text[i])]) {
      for (const auto& s : t.specials) {
        if (text.compare(i, s.content.size(), s.content) != 0) continue;
        const size_t e = i + s.content.size();
        if (s.single_word &&
            ((i > 0 && is_word_char(unicode::decode_utf8(text, prev_char_start(text, i)).cp)) ||
             (e < text.size() && is_word_char(unicode::decode_utf8(text, e).cp))))
          continue;
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t s = i, e = i + hit->content.size();
    while (hit->lstrip && s > seg) {
      const size_t k = prev_char_start(text, s);
      if (!unicode::is_space(unicode::decode_utf8(text, k).cp)) break;
      s = k;
    }
    while (hit->rstrip && e < text.size()) {
      const auto u = unicode::decode_utf8(text, e);
      if (!unicode::is_space(u.cp)) break;
      e += u.len;
    }
    encode_segment(t, text.substr(seg, s - seg), out);
    out.push_back(hit->id);
    seg = i = e;
  }
  encode_segment(t, text.substr(seg), out);
  if (add_special) out.insert(out.end(), t.suffix_ids.begin(), t.suffix_ids.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  const Impl& t = *impl_;
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= t.text.size() || !t.present[id])
      throw std::out_of_range("token id " + std::to_string(id) + " is not in the vocabulary of " +
                              t.source + " (size " + std::to_string(t.text.size()) + ")");
    out += t.bytes[id];
  }
  return out;
}

std::string Tokenizer::token_text(int32_t id) const {
  const Impl& t = *impl_;
  return id >= 0 && static_cast<size_t>(id) < t.text.size() ? t.text[id] : std::string();
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
  auto it = impl_->by_text.find(std::string(text));
  if (it == impl_->by_text.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->text.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
const std::vector<SplitRule>& Tokenizer::split_rules() const { return impl_->rules; }

void Tokenizer::set_special_ids(int32_t bos, int32_t eos, bool add_bos) {
  const auto n = vocab_size();
  for (auto [name, v] : {std::pair{"bos", bos}, std::pair{"eos", eos}})
    if (v < -1 || v >= n)
      throw ConfigError(impl_->source + ": " + name + " id " + std::to_string(v) +
                        " is outside the vocabulary [0, " + std::to_string(n) + ")");
  if (add_bos && bos < 0) throw ConfigError(impl_->source + ": add_bos needs a bos id");
  // Copies share the tables; give this one its own before changing them.
  auto copy = std::make_shared<Impl>();
  copy->source = impl_->source;
  Impl& d = *copy;
  const Impl& s = *impl_;
  d.text = s.text; d.bytes = s.bytes; d.present = s.present; d.special = s.special;
  d.by_text = s.by_text; d.by_bytes = s.by_bytes; d.byte_id = s.byte_id; d.merges = s.merges;
  d.unk = s.unk; d.fuse_unk = s.fuse_unk;
  d.rules = s.rules; d.add_prefix_space = s.add_prefix_space; d.ignore_merges = s.ignore_merges;
  d.specials = s.specials; d.special_first = s.special_first;
  d.prefix_ids = s.prefix_ids; d.suffix_ids = s.suffix_ids;
  d.bos = bos;
  d.eos = eos;
  const bool was_bos_prefix = s.add_bos && !d.prefix_ids.empty() && d.prefix_ids[0] == s.bos;
  if (was_bos_prefix) d.prefix_ids.erase(d.prefix_ids.begin());
  d.add_bos = add_bos;
  if (add_bos) d.prefix_ids.insert(d.prefix_ids.begin(), bos);
  impl_ = std::move(copy);
}

}  // namespace twinfer
