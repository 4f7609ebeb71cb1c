// The Lua half of the experiment API: everything that is plain table shuffling (sweep grids,
// Markdown and CSV formatting) is written in Lua on top of the C functions in
// app/lua_experiment.cpp. It runs in the script's sandbox before the script, as chunk
// "=twinfer", receiving the public `twinfer` table and the table of C primitives.
#include "app/lua_prelude.h"

namespace twinfer {

const char* const kLuaPrelude = R"LUA(
local T, C = ...

local function check_table(fn, what, v, level)
  if type(v) ~= "table" then
    error(string.format("twinfer.%s: %s must be a table, got %s", fn, what, type(v)), level + 1)
  end
end

function T.run(cfg)
  check_table("run", "the run config", cfg, 2)
  return C.run_many({cfg})[1]
end

function T.config(cfg)
  check_table("config", "the run config", cfg or {}, 2)
  return C.config(cfg or {})
end

-- Knob names in either spelling; setting one removes the other so the grid value wins.
local function set_knob(cfg, k, v)
  cfg[(k:gsub("_", "-"))] = nil
  cfg[(k:gsub("-", "_"))] = nil
  cfg[k] = v
end

local function label_value(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 1e15 then
    return string.format("%d", v)
  end
  return tostring(v)
end

-- grid: { knob = {values}, ... } (knobs in name order, the last varying fastest) or
-- { {knob, {values}}, ... } for an explicit order. Returns the list of configs and names.
function T.points(base, grid)
  check_table("sweep", "the base config", base, 3)
  check_table("sweep", "the grid", grid, 3)
  local axes = {}
  if #grid > 0 then
    for i, axis in ipairs(grid) do
      if type(axis) ~= "table" or type(axis[1]) ~= "string" or type(axis[2]) ~= "table" then
        error(string.format("twinfer.sweep: grid[%d] must be {knob, {values...}}", i), 3)
      end
      axes[#axes + 1] = {name = axis[1], values = axis[2]}
    end
  else
    for k, vs in pairs(grid) do
      if type(k) ~= "string" or type(vs) ~= "table" then
        error("twinfer.sweep: the grid maps knob names to lists of values, e.g. "
              .. "{max_num_seqs = {32, 64}}; got key " .. tostring(k), 3)
      end
      axes[#axes + 1] = {name = k, values = vs}
    end
    table.sort(axes, function(a, b) return a.name < b.name end)
  end
  for _, axis in ipairs(axes) do
    if #axis.values == 0 then
      error("twinfer.sweep: knob '" .. axis.name .. "' has no values", 3)
    end
  end
  local points = {{}}
  for _, axis in ipairs(axes) do
    local grown = {}
    for _, p in ipairs(points) do
      for _, v in ipairs(axis.values) do
        local q = table.move(p, 1, #p, 1, {})
        q[#q + 1] = {axis.name, v}
        grown[#grown + 1] = q
      end
    end
    points = grown
  end
  local cfgs = {}
  for _, p in ipairs(points) do
    local cfg, parts = {}, {}
    for k, v in pairs(base) do cfg[k] = v end
    for _, kv in ipairs(p) do
      set_knob(cfg, kv[1], kv[2])
      parts[#parts + 1] = kv[1] .. "=" .. label_value(kv[2])
    end
    local name = table.concat(parts, ",")
    if base.name then name = base.name .. (name ~= "" and "," .. name or "") end
    cfg.name = name
    if base.out then cfg.out = base.out .. "/" .. name:gsub("[^%w%._=,+-]", "_") end
    cfgs[#cfgs + 1] = cfg
  end
  return cfgs
end

function T.sweep(base, grid, opts)
  if opts ~= nil then check_table("sweep", "opts", opts, 2) end
  return C.run_many(T.points(base, grid), opts)
end

-- Column spec: "path" (dotted; looked up in the row, then in row.config), {label, "path"} or
-- {label, function(row) -> value}.
local function lookup(row, path)
  local v = row
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

local function columns_of(fn, columns)
  check_table(fn, "columns", columns, 3)
  local out = {}
  for i, c in ipairs(columns) do
    local label, get
    if type(c) == "string" then
      label, get = c, c
    elseif type(c) == "table" and type(c[1]) == "string"
        and (type(c[2]) == "string" or type(c[2]) == "function") then
      label, get = c[1], c[2]
    else
      error(string.format("twinfer.%s: columns[%d] must be \"path\", {label, \"path\"} or "
                          .. "{label, function(row)}", fn, i), 3)
    end
    if type(get) == "string" then
      local path = get
      get = function(row)
        local v = lookup(row, path)
        if v == nil and type(row.config) == "table" then v = lookup(row.config, path) end
        return v
      end
    end
    out[#out + 1] = {label = label, get = get}
  end
  return out
end

function T.format(v)
  if v == nil then return "" end
  if math.type(v) == "integer" then return tostring(v) end
  if math.type(v) == "float" then
    if v ~= v then return "nan" end
    local a = math.abs(v)
    if v == math.floor(v) and a < 1e15 then return string.format("%d", v) end
    if a >= 1000 then return string.format("%.1f", v) end
    if a >= 1 then return string.format("%.3f", v) end
    return string.format("%.4g", v)
  end
  return tostring(v)
end

local function cells(fn, rows, columns)
  check_table(fn, "rows", rows, 3)
  local cols = columns_of(fn, columns)
  local grid, numeric = {}, {}
  for c = 1, #cols do numeric[c] = true end
  for r, row in ipairs(rows) do
    if type(row) ~= "table" then
      error(string.format("twinfer.%s: rows[%d] is a %s; expected a table", fn, r, type(row)), 3)
    end
    local line = {}
    for c, col in ipairs(cols) do
      local v = col.get(row)
      if type(v) ~= "number" and v ~= nil then numeric[c] = false end
      line[c] = T.format(v)
    end
    grid[#grid + 1] = line
  end
  return cols, grid, numeric
end

function T.table(rows, columns)
  local cols, grid, numeric = cells("table", rows, columns)
  local width = {}
  for c, col in ipairs(cols) do
    width[c] = math.max(3, #col.label)
    for _, line in ipairs(grid) do width[c] = math.max(width[c], #line[c]) end
  end
  local function pad(s, c)
    local fill = string.rep(" ", width[c] - #s)
    return numeric[c] and fill .. s or s .. fill
  end
  local out, head, rule = {}, {}, {}
  for c, col in ipairs(cols) do
    head[c] = pad(col.label, c)
    rule[c] = numeric[c] and string.rep("-", width[c] - 1) .. ":" or string.rep("-", width[c])
  end
  out[1] = "| " .. table.concat(head, " | ") .. " |"
  out[2] = "| " .. table.concat(rule, " | ") .. " |"
  for _, line in ipairs(grid) do
    local padded = {}
    for c = 1, #cols do padded[c] = pad(line[c], c) end
    out[#out + 1] = "| " .. table.concat(padded, " | ") .. " |"
  end
  return table.concat(out, "\n") .. "\n"
end

local function csv_field(s)
  if s:find('[,"\n\r]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function T.csv(rows, columns)
  local cols, grid = cells("csv", rows, columns)
  local out, head = {}, {}
  for c, col in ipairs(cols) do head[c] = csv_field(col.label) end
  out[1] = table.concat(head, ",")
  for _, line in ipairs(grid) do
    local f = {}
    for c = 1, #cols do f[c] = csv_field(line[c]) end
    out[#out + 1] = table.concat(f, ",")
  end
  return table.concat(out, "\n") .. "\n"
end

function T.write_csv(name, rows, columns)
  return T.write(name, T.csv(rows, columns))
end
)LUA";

}  // namespace twinfer
