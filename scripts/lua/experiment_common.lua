-- Helpers shared by the numbered experiments (experiments/NN_*.lua), loaded with
--   local E = twinfer.include("../scripts/lua/experiment_common.lua")
-- args: model=, hardware=, seed=, n= (request count scale, default 1), plus per-script lists
-- (e.g. utils=0.8,0.95) that scripts/claims_hw.sh uses to shrink a sweep for the GPU.
local A = args
local E = { A = A }
E.MODEL, E.HW = A.model or "llama-3-8b", A.hardware or "h100-sxm"
E.SCALE = tonumber(A.n or 1)
-- Hardware backends (cuda, cpu) replay in real time and own the device: runs go one at a time.
E.ON_HW = twinfer.backend ~= "sim"
function E.cfg(t)
  local c = { model = E.MODEL, hardware = E.HW, seed = tonumber(A.seed or 0) }
  for k, v in pairs(t) do c[k] = v end
  return c
end
function E.count(x) return math.max(1, math.floor(x * E.SCALE + 0.5)) end
function E.pct(new, old) return (new / old - 1) * 100 end
function E.sum(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s end
function E.max(t) local m = -math.huge for _, v in ipairs(t) do if v > m then m = v end end return m end

-- args[name] as a comma-separated list ("0.8,0.95" -> {0.8, 0.95}); numbers stay numbers, and
-- "true"/"false" become booleans. `default` when the argument is absent.
function E.list(name, default)
  local s = A[name]
  if s == nil then return default end
  local out = {}
  for item in s:gmatch("[^,]+") do
    local v = tonumber(item)
    if v == nil then
      if item == "true" then v = true elseif item == "false" then v = false else v = item end
    end
    out[#out + 1] = v
  end
  if #out == 0 then error("argument " .. name .. "=" .. s .. ": expected a comma-separated list", 2) end
  return out
end

-- True when `list` holds `v`.
function E.has(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- Like twinfer.run_all, but on a hardware backend each run goes alone under pcall, so one that
-- cannot run (out of memory at start-up, say) is reported instead of losing the whole claim.
-- A failed run's entry is { run_failed = true, error = MESSAGE, name = NAME } (results have
-- their own `failed`: the count of failed requests).
function E.run_each(runs)
  if not E.ON_HW then return twinfer.run_all(runs) end
  local res = {}
  for i, c in ipairs(runs) do
    local ok, r = pcall(twinfer.run, c)
    if ok then res[i] = r
    else
      twinfer.log("run " .. (c.name or i) .. " failed: " .. tostring(r))
      res[i] = { run_failed = true, error = tostring(r), name = c.name }
    end
  end
  return res
end

-- A checked metric that becomes an informative row (value absent) when a run it needs failed.
function E.metric_if(ok, m, why)
  if ok then return m end
  m.value, m.info = nil, true
  m.label = m.label .. " (not measured: " .. why .. ")"
  return m
end

-- Writes summary.json (read by scripts/make_papers.sh) and figure.csv.
function E.finish(s, fig_rows, fig_cols)
  s.backend, s.model, s.hardware = twinfer.backend, s.model or E.MODEL, E.HW
  s.scale = E.SCALE
  -- The key=value arguments of this run, sorted, so a paper can quote the exact command.
  local keys, parts = {}, {}
  for k in pairs(A) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. A[k] end
  s.args = table.concat(parts, " ")
  if fig_rows then twinfer.write_csv("figure.csv", fig_rows, fig_cols) end
  twinfer.write_json("summary.json", s)
  print(s.table_md or "")
end
return E
