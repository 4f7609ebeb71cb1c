-- Helpers shared by the numbered experiments (experiments/NN_*.lua), loaded with
--   local E = twinfer.include("../scripts/lua/experiment_common.lua")
-- args: model=, hardware=, seed=, n= (request count scale, default 1).
local A = args
local E = { A = A }
E.MODEL, E.HW = A.model or "llama-3-8b", A.hardware or "h100-sxm"
E.SCALE = tonumber(A.n or 1)
function E.cfg(t)
  local c = { model = E.MODEL, hardware = E.HW, seed = tonumber(A.seed or 0) }
  for k, v in pairs(t) do c[k] = v end
  return c
end
function E.count(x) return math.max(1, math.floor(x * E.SCALE + 0.5)) end
function E.pct(new, old) return (new / old - 1) * 100 end
function E.sum(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s end
-- Writes summary.json (read by scripts/make_papers.sh) and figure.csv.
function E.finish(s, fig_rows, fig_cols)
  s.backend, s.model, s.hardware = twinfer.backend, E.MODEL, E.HW
  if fig_rows then twinfer.write_csv("figure.csv", fig_rows, fig_cols) end
  twinfer.write_json("summary.json", s)
  print(s.table_md or "")
end
return E
