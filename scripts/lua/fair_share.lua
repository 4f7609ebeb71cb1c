-- Fair share across tenants with a virtual clock (L. Zhang, "VirtualClock", SIGCOMM 1990).
-- Each tenant (here: the request's priority class) owns a clock that advances by the tokens a
-- request costs divided by the tenant's reserved rate; a request is stamped with its tenant's
-- clock, never earlier than its arrival. Serving smallest stamps first gives each backlogged
-- tenant at least its share, while an idle tenant cannot bank credit (the clock restarts at
-- the arrival time). A flood from one tenant pushes only its own stamps into the future.
local RATE = 4000.0           -- tokens/s reserved per unit of weight
local WEIGHTS = { [0] = 1.0 } -- priority class -> weight; unlisted classes weigh 1

local clock = {}  -- tenant -> virtual clock (s)
local stamp = {}  -- request id -> stamp, so a preempted request keeps its place

local function cost(req)
  return req.prompt_len + (req.output_len or req.max_tokens)
end

return {
  key = function(req, now)
    local s = stamp[req.id]
    if s then return s end
    local tenant = req.priority
    local start = math.max(clock[tenant] or 0.0, req.arrival)
    s = start + cost(req) / (RATE * (WEIGHTS[tenant] or 1.0))
    clock[tenant] = s
    stamp[req.id] = s
    return s
  end,
  time_dependent = false,

  -- Victim: the running request whose tenant is furthest ahead of its share.
  choose = function(running, now)
    local best, best_stamp = #running, -math.huge
    for i, r in ipairs(running) do
      local s = stamp[r.id] or r.arrival
      if s > best_stamp then best, best_stamp = i, s end
    end
    return best
  end,
}
