-- wrk script of `make bench-api` (bench/wrk.py runs it): one scenario's requests, timed one by one.
--
-- wrk runs one connection per thread (-t N -c N), so each thread's Lua state is one connection's:
-- request() and response() alternate, and a page's next_cursor is followed on the same connection
-- with the same filters (none is followed after a request that got no answer: wrk reconnected).
-- wrk's own latency figures are not used (answers slower than --timeout are left out of them, the
-- warm-up is in them); each request's send and answer times are read here from
-- CLOCK_MONOTONIC (the clock of Python's time.monotonic) and written by done() to a file, for
-- bench/wrk.py to apply the benchmark's window and percentile rules.
--
-- The scenario comes from the Lua file named by $BENCH_API_WRK_CONFIG (written by bench/wrk.py):
-- its picks (share, kind, endpoint index, path: a page's, a lookup's prefix or a fixed target),
-- the data's days, sentiments, URL-encoded companies and tweet ids, the request head's fixed
-- tail, the window [start, stop), the seed and the output file. A thread stops itself at its first
-- answer after `stop`: every request in flight during the window is awaited to its end, and none
-- is sent after it. With `stop_file`, the window ends when that file holds a time (written by
-- bench/wrk.py when what the scenario waits for is over; each thread reads it every half second). The output file has one line per item: "W connect read write status timeout"
-- (wrk's socket error counters), "R endpoint sent answered status" (status 0: no answer, the
-- connection failed), "P endpoint sent" (sent before `stop`, unanswered when wrk stopped),
-- "E endpoint message" (a thread's first non-2xx answer of that endpoint).

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local cfg = dofile(os.getenv("BENCH_API_WRK_CONFIG"))
local random, max, find, match = math.random, math.max, string.find, string.match
local FOLLOW_CURSOR = cfg.follow_cursor

-- The window's end: cfg.stop, or the time in cfg.stop_file once bench/wrk.py wrote it there.
local function read_stop_file()
  local f = io.open(cfg.stop_file, "r")
  if f == nil then
    return nil
  end
  local value = tonumber(f:read("*a"))
  f:close()
  return value
end

-- main state: the threads, for done() ------------------------------------------------------------
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

-- thread state: one connection -------------------------------------------------------------------
-- What this thread measured (globals: done() reads them with thread:get), one entry per request
-- answered (or failed) at or after cfg.start: endpoint index, sent, answered, status (0: no answer).
ep_of, sent_at, done_at, status_of = {}, {}, {}, {}
local recorded = 0
first_error = {} -- endpoint index -> message
pending_sent, pending_ep = nil, nil -- the request on the wire
local pending_page, pending_base = nil, nil -- its path and filters when it is a page
local next_page = {} -- path -> filters and cursor of the next page of the last one
local verified = false
local stop, stop_read_at = cfg.stop, 0

local function past_stop(t)
  if cfg.stop_file ~= nil and t - stop_read_at >= 0.5 then
    stop_read_at = t
    stop = read_stop_file() or stop
  end
  return t >= stop
end

function init(args)
  math.randomseed(cfg.seed * 1000 + id)
end

local function filters()
  local days = random(1, 7)
  local first = random(0, max(cfg.span - days + 1, 0))
  local q = "start_date=" .. cfg.days[first + 1] .. "&end_date=" .. cfg.days[first + days]
  local which = random(1, 3) -- sentiment, company, both
  if which ~= 2 then
    q = q .. "&sentiment=" .. cfg.sentiments[random(#cfg.sentiments)]
  end
  if which ~= 1 and #cfg.companies > 0 then
    q = q .. "&company=" .. cfg.companies[random(#cfg.companies)]
  end
  return q .. "&limit=" .. cfg.page_limit
end

-- (endpoint index, target, page path or nil, page filters without the cursor)
local function pick()
  local p = cfg.picks[1]
  if #cfg.picks > 1 then
    local r, acc = random(), 0
    for i = 1, #cfg.picks do
      p = cfg.picks[i]
      acc = acc + p.share
      if r < acc then
        break
      end
    end
  end
  if p.kind == "page" then
    local follow = next_page[p.path]
    if follow ~= nil and random() < FOLLOW_CURSOR then
      return p.ep, p.path .. "?" .. follow[1] .. "&cursor=" .. follow[2], p.path, follow[1]
    end
    local q = filters()
    return p.ep, p.path .. "?" .. q, p.path, q
  elseif p.kind == "lookup" then
    return p.ep, p.path .. cfg.ids[random(#cfg.ids)], nil, nil
  end
  return p.ep, p.path, nil, nil
end

local function record(ep, sent, answered, status, body)
  if answered < cfg.start then
    return
  end
  recorded = recorded + 1
  local n = recorded
  ep_of[n], sent_at[n], done_at[n], status_of[n] = ep, sent, answered, status
  if status ~= 0 and (status < 200 or status > 299) and first_error[ep] == nil then
    first_error[ep] = status .. " " .. body:sub(1, 500)
  end
end

function request()
  local t = now()
  if pending_sent ~= nil then -- the previous request got no answer: its connection failed
    record(pending_ep, pending_sent, t, 0, "")
    pending_sent = nil
    next_page = {} -- wrk reconnected: this first request of the new connection follows no old page
  end
  local ep, target, page, base = pick()
  local req = "GET " .. target .. " HTTP/1.1\r\n" .. cfg.head_tail
  if id == 1 and not verified then -- wrk parses thread 1's first request once, without sending it
    verified = true
    return req
  end
  pending_sent, pending_ep, pending_page, pending_base = t, ep, page, base
  if past_stop(t) then
    wrk.thread:stop()
  end
  return req
end

function response(status, headers, body)
  local t = now()
  if pending_sent == nil then
    return
  end
  record(pending_ep, pending_sent, t, status, body)
  local page = pending_page
  pending_sent = nil
  if page ~= nil then
    local cursor = nil
    if status >= 200 and status <= 299 then
      -- next_cursor is the answer's last key: a plain search from near the end, then from the start
      local key = '"next_cursor":'
      local at = find(body, key, max(#body - 400, 1), true) or find(body, key, 1, true)
      cursor = at and match(body, '^%s*"([^"]*)"', at + 14) or nil
    end
    next_page[page] = cursor and { pending_base, cursor } or nil
  end
  if past_stop(t) then
    wrk.thread:stop()
  end
end

-- main state, after every thread stopped ---------------------------------------------------------
function done(summary, latency, requests)
  local stop = cfg.stop_file ~= nil and read_stop_file() or cfg.stop
  local out = assert(io.open(cfg.out, "w"))
  local e = summary.errors
  out:write(string.format("W %d %d %d %d %d\n", e.connect, e.read, e.write, e.status, e.timeout))
  for _, thread in ipairs(threads) do
    local eps, sent = thread:get("ep_of"), thread:get("sent_at")
    local answered, st = thread:get("done_at"), thread:get("status_of")
    for i = 1, #eps do
      out:write(string.format("R %d %.6f %.6f %d\n", eps[i], sent[i], answered[i], st[i]))
    end
    local waiting = thread:get("pending_sent")
    if waiting ~= nil and waiting < stop then
      out:write(string.format("P %d %.6f\n", thread:get("pending_ep"), waiting))
    end
    for ep, msg in pairs(thread:get("first_error")) do
      out:write(string.format("E %d %s\n", ep, (msg:gsub("[\r\n]", " "))))
    end
  end
  out:close()
end
