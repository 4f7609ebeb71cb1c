-- Shortest job first with aging. A request's size is its prompt plus the tokens it still has to
-- generate (the trace's output length when the workload knows it, else max_tokens); waiting
-- lowers the key by AGING tokens per second, so a long request is not starved forever: after
-- waiting (size_long - size_short) / AGING seconds it overtakes a newly arrived short one.
--
-- As a victim policy (--preemption-victim) it preempts the running request with the most work
-- left, which frees blocks for the longest time at the smallest loss of progress per token.
local AGING = 200.0  -- tokens of size forgiven per second of waiting

local function remaining(req)
  local target = req.output_len or req.max_tokens
  return req.prompt_len + math.max(0, target - req.generated)
end

return {
  key = function(req, now)
    return remaining(req) - AGING * (now - req.arrival)
  end,
  -- The key depends on `now`: the scheduler re-evaluates it for every waiting request each step.
  time_dependent = true,

  choose = function(running, now)
    local best, best_left = 1, -1
    for i, r in ipairs(running) do
      local left = remaining(r)
      if left > best_left then best, best_left = i, left end
    end
    return best
  end,
}
