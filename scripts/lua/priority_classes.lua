-- Two priority classes derived from the request id, for workloads that carry no priorities
-- (traces and synthetic draws all have priority 0): every 4th request is "interactive"
-- (class 0), the rest "batch" (class 1). Within a class, first come first served — vLLM's
-- priority policy, key (priority, arrival). experiments/08_scheduling_policies.lua uses it.
local function class(id) return id % 4 == 0 and 0 or 1 end

return {
  class = class,
  key = function(req, now) return class(req.id) * 1e9 + req.arrival end,
  time_dependent = false,
}
