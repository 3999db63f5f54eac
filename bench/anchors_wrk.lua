-- wrk script of bench/anchors.py: a different URL on every request, on every thread.
--
--   wrk -t2 -c16 -d20s --latency -s bench/anchors_wrk.lua http://127.0.0.1:PORT \
--       -- MODE PREFIX SUFFIX LOGBASE NONCE THREADS [MODE ARGS…]
--
-- Each request's path is PREFIX .. value .. SUFFIX, where value depends on MODE:
--   bbox  MINX MINY MAXX MAXY W H [POINTS]
--                                   a random W×H degree box inside the extent ("x1,y1,x2,y2");
--                                   with POINTS (a file of "x y" lines), a random W×H box
--                                   containing a random one of those points instead
--   id    N START MULT OFF FORMAT   the (START + j·THREADS + tid − 1)-th element of a fixed
--                                   permutation of 0…N−1 (g ↦ (MULT·g + OFF) mod N, MULT
--                                   coprime to N, ≈ 0.618·N so that consecutive ids lie far
--                                   apart), formatted with FORMAT: never the same id twice
--                                   until N requests have been made, on any thread
--   num   LO HI                     a random number in [LO, HI) with 2 decimals
--   tile  ORDER ZMIN ZMAX POINTS UNIQUE
--                                   the WebMercatorQuad tile, at a random zoom in ZMIN…ZMAX,
--                                   that contains a random one of POINTS ("x y" lines, lon
--                                   lat), written "z/y/x" (ORDER zyx) or "z/x/y" (zxy); with
--                                   UNIQUE = 1 the query gets a value no other request has
--                                   (SUFFIX ends in "?name=" for it): NONCE-tid-counter.
--                                   Also counts the answers per thread (200 with a body, 204,
--                                   200 with an empty body, other) and prints them at the end
--                                   as one "TILE-ANSWERS ok=… s204=… empty200=… other=…" line.
--
-- Every thread gets its own seed: math.randomseed(os.time() * 1000 + NONCE * 64 + tid), tid
-- set per thread by setup(). LuaJIT's generator is per Lua state, i.e. per thread, so two
-- threads seeded alike would send the same URLs (the flaw of the old comparison, whose two
-- threads were both seeded with 7).
--
-- When LOGBASE is not empty every path sent is appended to LOGBASE-<tid>.txt; the harness
-- counts distinct/total over those files (buffered writes, flushed by the C library when wrk
-- exits).

local next_tid = 0
local threads = {}

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  threads[#threads + 1] = thread
end

-- Main Lua state: sums the per-thread answer counts of the tile mode (nil elsewhere).
function done(summary, latency, requests)
  local sum, counted = {ok = 0, s204 = 0, empty200 = 0, other = 0}, false
  for _, t in ipairs(threads) do
    for k, _ in pairs(sum) do
      local v = t:get("n_" .. k)
      if v then sum[k], counted = sum[k] + v, true end
    end
  end
  if counted then
    io.write(string.format("TILE-ANSWERS ok=%d s204=%d empty200=%d other=%d\n",
      sum.ok, sum.s204, sum.empty200, sum.other))
  end
end

local mode, prefix, suffix, log
local a = {}
local counter = 0

local function read_points(file)
  a.xs, a.ys = {}, {}
  for line in io.lines(file) do
    local x, y = line:match("^(%S+) (%S+)$")
    a.xs[#a.xs + 1], a.ys[#a.ys + 1] = tonumber(x), tonumber(y)
  end
end

function init(args)
  mode, prefix, suffix = args[1], args[2], args[3]
  local logbase = args[4]
  local nonce = tonumber(args[5])
  a.threads = tonumber(args[6])
  math.randomseed(os.time() * 1000 + nonce * 64 + tid)
  math.random(); math.random(); math.random()
  if logbase ~= "" then
    log = io.open(logbase .. "-" .. tid .. ".txt", "w")
    log:setvbuf("full")
  end
  if mode == "bbox" then
    a.minx, a.miny, a.maxx, a.maxy = tonumber(args[7]), tonumber(args[8]), tonumber(args[9]), tonumber(args[10])
    a.w, a.h = tonumber(args[11]), tonumber(args[12])
    if args[13] and args[13] ~= "" then read_points(args[13]) end
  elseif mode == "id" then
    a.n, a.start, a.mult, a.off = tonumber(args[7]), tonumber(args[8]), tonumber(args[9]), tonumber(args[10])
    a.fmt = args[11]
  elseif mode == "num" then
    a.lo, a.hi = tonumber(args[7]), tonumber(args[8])
  elseif mode == "tile" then
    a.order, a.zmin, a.zmax = args[7], tonumber(args[8]), tonumber(args[9])
    read_points(args[10])
    a.unique, a.nonce = args[11] == "1", nonce
    n_ok, n_s204, n_empty200, n_other = 0, 0, 0, 0  -- globals: read by done() via thread:get
    -- Defined only here (wrk asks after init whether a script wants responses), so the
    -- other modes keep wrk's faster path that does not keep bodies.
    response = function(status, headers, body)
      if status == 204 then n_s204 = n_s204 + 1
      elseif status == 200 and (body == nil or #body == 0) then n_empty200 = n_empty200 + 1
      elseif status == 200 then n_ok = n_ok + 1
      else n_other = n_other + 1 end
    end
  else
    error("unknown mode " .. tostring(mode))
  end
end

local function value()
  if mode == "bbox" then
    local x, y
    if a.xs then
      local k = math.random(#a.xs)
      x, y = a.xs[k] - math.random() * a.w, a.ys[k] - math.random() * a.h
    else
      x = a.minx + math.random() * (a.maxx - a.minx - a.w)
      y = a.miny + math.random() * (a.maxy - a.miny - a.h)
    end
    return string.format("%.6f,%.6f,%.6f,%.6f", x, y, x + a.w, y + a.h)
  elseif mode == "id" then
    local g = a.start + counter * a.threads + (tid - 1)
    counter = counter + 1
    return string.format(a.fmt, (a.mult * g + a.off) % a.n)
  elseif mode == "tile" then
    local k = math.random(#a.xs)
    local z = math.random(a.zmin, a.zmax)
    local n = 2 ^ z
    local lat = math.rad(a.ys[k])
    local x = math.floor((a.xs[k] + 180) / 360 * n)
    local y = math.floor((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * n)
    local path = a.order == "zxy" and string.format("%d/%d/%d", z, x, y)
      or string.format("%d/%d/%d", z, y, x)
    counter = counter + 1
    return path, a.unique and string.format("%d-%d-%d", a.nonce, tid, counter) or ""
  else
    return string.format("%.2f", a.lo + math.random() * (a.hi - a.lo))
  end
end

function request()
  local v, unique = value()
  local path = prefix .. v .. suffix .. (unique or "")
  if log then log:write(path, "\n") end
  return wrk.format("GET", path)
end
