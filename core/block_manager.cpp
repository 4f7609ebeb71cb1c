#include "core/block_manager.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace twinfer {

namespace {

// splitmix64 finalizer: cheap, well-mixed, stable across platforms (block hashes end up in
// output files, so they must not depend on std::hash).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ 0x5bd1e9955bd1e995ULL);
  for (int32_t t : tokens) h = mix64(h ^ static_cast<uint32_t>(t));
  return h;
}

std::vector<BlockHash> prompt_block_hashes(const RequestSpec& r, int32_t block_size) {
  std::vector<BlockHash> out;
  const int32_t full = r.prompt_len / block_size;
  if (!r.prompt_tokens.empty()) {
    out.reserve(static_cast<size_t>(full));
    BlockHash parent = 0;
    for (int32_t i = 0; i < full; ++i) {
      parent = hash_block_tokens(
          parent, std::span<const int32_t>(r.prompt_tokens).subspan(
                      static_cast<size_t>(i) * block_size, static_cast<size_t>(block_size)));
      out.push_back(parent);
    }
    return out;
  }
  if (r.hash_ids.empty() || r.hash_block_tokens <= 0) return out;
  // A block of ours may lie inside one workload block or span several; its identity is the
  // chain of every workload id it touches plus its offset, so two requests share it exactly when
  // the workload says their prefixes agree up to its last token.
  out.reserve(static_cast<size_t>(full));
  BlockHash parent = 0;
  const int64_t hb = r.hash_block_tokens;
  for (int32_t i = 0; i < full; ++i) {
    const int64_t first_tok = static_cast<int64_t>(i) * block_size;
    const int64_t last_tok = first_tok + block_size - 1;
    const int64_t j0 = first_tok / hb, j1 = last_tok / hb;
    if (j1 >= static_cast<int64_t>(r.hash_ids.size())) break;  // workload names no more blocks
    uint64_t h = mix64(parent ^ static_cast<uint64_t>(first_tok % hb) ^ 0x2545f4914f6cdd1dULL);
    for (int64_t j = j0; j <= j1; ++j) h = mix64(h ^ r.hash_ids[static_cast<size_t>(j)]);
    parent = h;
    out.push_back(h);
  }
  return out;
}

BlockManager::BlockManager(const BlockManagerConfig& cfg, EvictionPolicy* eviction,
                           KvEventLog* log)
    : cfg_(cfg), eviction_(eviction), log_(log) {
  const auto n = static_cast<size_t>(std::max(0, cfg.num_gpu_blocks));
  refs_.assign(n, 0);
  block_hash_.assign(n, 0);
  has_hash_.assign(n, 0);
  access_count_.assign(n, 0);
  in_free_.assign(n, 1);
  for (size_t i = 0; i < n; ++i) free_.push_back(static_cast<BlockId>(i));
  // Host blocks are handed out lowest id first too: keep the free stack in descending order.
  for (int32_t i = cfg.num_cpu_blocks - 1; i >= 0; --i) cpu_free_.push_back(i);
  if (cfg_.enable_prefix_caching && eviction_ == nullptr) {
    std::fprintf(stderr, "BlockManager: prefix caching needs an eviction policy\n");
    std::abort();
  }
}

int32_t BlockManager::num_free_blocks() const {
  return static_cast<int32_t>(free_.size() + (eviction_ ? eviction_->size() : 0));
}

int32_t BlockManager::num_cached_blocks() const {
  return eviction_ ? static_cast<int32_t>(eviction_->size()) : 0;
}

int32_t BlockManager::count_prefix_hits(std::span<const BlockHash> hashes) const {
  if (!cfg_.enable_prefix_caching) return 0;
  int32_t n = 0;
  for (BlockHash h : hashes) {
    if (cache_.find(h) == cache_.end()) break;
    ++n;
  }
  return n;
}

std::span<const BlockId> BlockManager::block_table(RequestId seq) const {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return {};
  return it->second;
}

bool BlockManager::can_allocate(RequestId seq, int64_t total_tokens,
                                std::span<const BlockHash> hashes, int32_t reserve) const {
  auto it = tables_.find(seq);
  const int32_t have = it == tables_.end() ? 0 : static_cast<int32_t>(it->second.size());
  int32_t need = blocks_for_tokens(total_tokens) - have;
  int32_t taken_from_cache = 0;
  if (have == 0 && cfg_.enable_prefix_caching) {
    for (BlockHash h : hashes) {
      auto c = cache_.find(h);
      if (c == cache_.end()) break;
      --need;
      // A hit on an unreferenced cached block takes it out of the evictable pool.
      if (refs_[static_cast<size_t>(c->second)] == 0) ++taken_from_cache;
    }
  }
  need = std::max(need, 0);
  return num_free_blocks() - taken_from_cache - need >= reserve;
}

BlockId BlockManager::take_block() {
  BlockId b;
  if (!free_.empty()) {
    b = free_.front();
    free_.pop_front();
    in_free_[static_cast<size_t>(b)] = 0;
  } else {
    auto v = eviction_ ? eviction_->pop_victim() : std::nullopt;
    if (!v) {
      std::fprintf(stderr, "BlockManager: allocation without capacity (call can_allocate)\n");
      std::abort();
    }
    b = *v;
    uncache(b);
    if (log_) log_->add(KvEventType::evict, -1, &b, 1);
  }
  access_count_[static_cast<size_t>(b)] = 1;
  return b;
}

void BlockManager::uncache(BlockId b) {
  auto& hh = has_hash_[static_cast<size_t>(b)];
  if (!hh) return;
  auto it = cache_.find(block_hash_[static_cast<size_t>(b)]);
  if (it != cache_.end() && it->second == b) cache_.erase(it);
  hh = 0;
}

void BlockManager::release_block(BlockId b) {
  const auto i = static_cast<size_t>(b);
  if (has_hash_[i] && eviction_) {
    eviction_->insert(b, access_count_[i], now_);
  } else {
    free_.push_back(b);
    in_free_[i] = 1;
  }
}

int32_t BlockManager::allocate(RequestId seq, int64_t total_tokens,
                               std::span<const BlockHash> hashes, int32_t queried_blocks) {
  auto& table = tables_[seq];
  int32_t hit_tokens = 0;
  if (table.empty() && cfg_.enable_prefix_caching)
    prefix_queries_ += std::max<uint64_t>(hashes.size(), static_cast<uint64_t>(std::max(queried_blocks, 0)));
  if (table.empty() && cfg_.enable_prefix_caching && !hashes.empty()) {
    for (BlockHash h : hashes) {
      auto c = cache_.find(h);
      if (c == cache_.end()) break;
      const BlockId b = c->second;
      const auto i = static_cast<size_t>(b);
      if (refs_[i] == 0) eviction_->erase(b);
      ++refs_[i];
      ++access_count_[i];
      table.push_back(b);
      hit_tokens += cfg_.block_size;
    }
    prefix_hits_ += table.size();
    if (log_ && !table.empty()) log_->add(KvEventType::share, seq, table.data(), table.size());
  }
  const size_t shared_end = table.size();
  const int32_t want = blocks_for_tokens(total_tokens);
  while (static_cast<int32_t>(table.size()) < want) {
    const BlockId b = take_block();
    refs_[static_cast<size_t>(b)] = 1;
    table.push_back(b);
  }
  if (log_ && table.size() > shared_end)
    log_->add(KvEventType::allocate, seq, table.data() + shared_end, table.size() - shared_end);
  debug_check();
  return hit_tokens;
}

void BlockManager::cache_blocks(RequestId seq, size_t first, std::span<const BlockHash> hashes) {
  if (!cfg_.enable_prefix_caching || hashes.empty()) return;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  const auto& table = it->second;
  scratch_.clear();
  for (size_t k = 0; k < hashes.size() && first + k < table.size(); ++k) {
    const BlockId b = table[first + k];
    const auto i = static_cast<size_t>(b);
    if (has_hash_[i]) continue;
    auto [pos, inserted] = cache_.try_emplace(hashes[k], b);
    if (!inserted) continue;  // same content computed twice at once: keep the first copy
    block_hash_[i] = hashes[k];
    has_hash_[i] = 1;
    scratch_.push_back(b);
  }
  if (log_ && !scratch_.empty()) log_->add(KvEventType::cache, seq, scratch_.data(), scratch_.size());
}

void BlockManager::free(RequestId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  auto& table = it->second;
  // Tail first: among blocks released together, the sequence's last blocks become the oldest
  // eviction candidates, so shared prefixes outlive the suffixes built on them.
  for (auto r = table.rbegin(); r != table.rend(); ++r) {
    const auto i = static_cast<size_t>(*r);
    if (--refs_[i] == 0) release_block(*r);
  }
  if (log_) log_->add(KvEventType::free, seq, table.data(), table.size());
  tables_.erase(it);
  debug_check();
}

void BlockManager::fork(RequestId parent, RequestId child) {
  auto it = tables_.find(parent);
  std::vector<BlockId> copy = it == tables_.end() ? std::vector<BlockId>{} : it->second;
  for (BlockId b : copy) ++refs_[static_cast<size_t>(b)];
  if (log_) log_->add(KvEventType::fork, child, copy.data(), copy.size(), nullptr, 0, parent);
  tables_[child] = std::move(copy);
  debug_check();
}

bool BlockManager::can_write(RequestId seq, int64_t pos) const {
  auto t = block_table(seq);
  const auto idx = static_cast<size_t>(pos / cfg_.block_size);
  if (idx >= t.size() || refs_[static_cast<size_t>(t[idx])] <= 1) return true;
  return num_free_blocks() >= 1;
}

std::optional<std::pair<BlockId, BlockId>> BlockManager::prepare_write(RequestId seq,
                                                                       int64_t pos) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return std::nullopt;
  auto& table = it->second;
  const auto idx = static_cast<size_t>(pos / cfg_.block_size);
  if (idx >= table.size()) return std::nullopt;
  const BlockId src = table[idx];
  if (refs_[static_cast<size_t>(src)] <= 1 || num_free_blocks() < 1) return std::nullopt;
  const BlockId dst = take_block();
  --refs_[static_cast<size_t>(src)];
  refs_[static_cast<size_t>(dst)] = 1;
  table[idx] = dst;
  if (log_) log_->add(KvEventType::cow, seq, &src, 1, &dst, 1);
  debug_check();
  return std::make_pair(src, dst);
}

bool BlockManager::can_swap_out(RequestId seq) const {
  return block_table(seq).size() <= cpu_free_.size() && has_table(seq);
}

std::vector<std::pair<BlockId, BlockId>> BlockManager::swap_out(RequestId seq) {
  std::vector<std::pair<BlockId, BlockId>> pairs;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return pairs;
  auto& table = it->second;
  std::vector<BlockId> host;
  host.reserve(table.size());
  for (BlockId b : table) {
    const BlockId c = cpu_free_.back();
    cpu_free_.pop_back();
    host.push_back(c);
    pairs.emplace_back(b, c);
  }
  for (auto r = table.rbegin(); r != table.rend(); ++r) {
    const auto i = static_cast<size_t>(*r);
    if (--refs_[i] == 0) release_block(*r);
  }
  if (log_) log_->add(KvEventType::swap_out, seq, table.data(), table.size(), host.data(), host.size());
  tables_.erase(it);
  swapped_[seq] = std::move(host);
  debug_check();
  return pairs;
}

bool BlockManager::is_swapped(RequestId seq) const { return swapped_.count(seq) != 0; }

bool BlockManager::can_swap_in(RequestId seq, int32_t reserve) const {
  auto it = swapped_.find(seq);
  if (it == swapped_.end()) return false;
  return num_free_blocks() - static_cast<int32_t>(it->second.size()) >= reserve;
}

std::vector<std::pair<BlockId, BlockId>> BlockManager::swap_in(RequestId seq) {
  std::vector<std::pair<BlockId, BlockId>> pairs;
  auto it = swapped_.find(seq);
  if (it == swapped_.end()) return pairs;
  auto& table = tables_[seq];
  for (BlockId c : it->second) {
    const BlockId b = take_block();
    refs_[static_cast<size_t>(b)] = 1;
    table.push_back(b);
    pairs.emplace_back(c, b);
  }
  if (log_) log_->add(KvEventType::swap_in, seq, table.data(), table.size(), it->second.data(), it->second.size());
  // Descending push keeps lower host ids on top after a round trip.
  for (auto r = it->second.rbegin(); r != it->second.rend(); ++r) cpu_free_.push_back(*r);
  swapped_.erase(it);
  debug_check();
  return pairs;
}

std::string BlockManager::check_invariants() const {
  const size_t n = refs_.size();
  std::vector<int32_t> counted(n, 0);
  for (const auto& [seq, table] : tables_) {
    for (BlockId b : table) {
      if (b < 0 || static_cast<size_t>(b) >= n)
        return "seq " + std::to_string(seq) + " holds out-of-range block " + std::to_string(b);
      ++counted[static_cast<size_t>(b)];
    }
  }
  std::vector<uint8_t> seen_free(n, 0);
  for (BlockId b : free_) {
    const auto i = static_cast<size_t>(b);
    if (seen_free[i]) return "block " + std::to_string(b) + " twice on the free list";
    seen_free[i] = 1;
  }
  size_t cached_unref = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string id = "block " + std::to_string(i);
    if (refs_[i] != counted[i])
      return id + ": ref count " + std::to_string(refs_[i]) + " but " +
             std::to_string(counted[i]) + " table references";
    if (refs_[i] < 0) return id + ": negative ref count";
    if (refs_[i] > 0 && seen_free[i]) return id + ": referenced but on the free list";
    if (refs_[i] == 0 && !seen_free[i] && !has_hash_[i])
      return id + ": unreferenced, unhashed and not free (leaked)";
    if (refs_[i] == 0 && seen_free[i] && has_hash_[i]) return id + ": free but still hashed";
    if (refs_[i] == 0 && has_hash_[i]) ++cached_unref;
    if (has_hash_[i]) {
      auto it = cache_.find(block_hash_[i]);
      if (it == cache_.end() || it->second != static_cast<BlockId>(i))
        return id + ": hashed but not the cache's block for its hash";
    }
  }
  if (cached_unref != static_cast<size_t>(num_cached_blocks()))
    return std::to_string(cached_unref) + " cached unreferenced blocks but eviction set holds " +
           std::to_string(num_cached_blocks());
  for (const auto& [h, b] : cache_)
    if (!has_hash_[static_cast<size_t>(b)] || block_hash_[static_cast<size_t>(b)] != h)
      return "cache entry points at block " + std::to_string(b) + " without that hash";
  std::vector<uint8_t> cpu_seen(static_cast<size_t>(std::max(0, cfg_.num_cpu_blocks)), 0);
  size_t cpu_total = cpu_free_.size();
  auto mark = [&](BlockId c) -> bool {
    if (c < 0 || c >= cfg_.num_cpu_blocks || cpu_seen[static_cast<size_t>(c)]) return false;
    cpu_seen[static_cast<size_t>(c)] = 1;
    return true;
  };
  for (BlockId c : cpu_free_)
    if (!mark(c)) return "host block " + std::to_string(c) + " duplicated or out of range";
  for (const auto& [seq, host] : swapped_) {
    cpu_total += host.size();
    for (BlockId c : host)
      if (!mark(c)) return "host block " + std::to_string(c) + " of seq " + std::to_string(seq) + " duplicated";
  }
  if (cpu_total != static_cast<size_t>(std::max(0, cfg_.num_cpu_blocks)))
    return "host blocks leaked: " + std::to_string(cpu_total) + " of " + std::to_string(cfg_.num_cpu_blocks);
  return "";
}

void BlockManager::debug_check() const {
#ifndef NDEBUG
  // The full check is O(pool); keep debug runs usable on production-sized pools.
  if (refs_.size() <= 4096) {
    std::string err = check_invariants();
    if (!err.empty()) {
      std::fprintf(stderr, "BlockManager invariant violated: %s\n", err.c_str());
      std::abort();
    }
  }
#endif
}

}  // namespace twinfer
