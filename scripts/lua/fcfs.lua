-- First come, first served: the twin of the built-in `fcfs` queue order.
-- Usage: twinfer run --scheduling-policy lua:scripts/lua/fcfs.lua ...
return {
  -- Smaller keys are served first; ties fall back to (arrival, id) in the scheduler.
  key = function(req, now) return req.arrival end,
  -- The key never changes while a request waits, so the scheduler computes it once.
  time_dependent = false,
}
