-- wrk script for bench/suite.py: every request probes the next target of a list, so a run
-- spreads over the whole simulated fleet instead of hammering one node.
--   wrk ... -s bench/rotate.lua URL -- PATH_PREFIX TARGETS_FILE THREADS [RATE]
-- PATH_PREFIX is e.g. "/probe?module=nodemanager&target=" (the target is appended),
-- TARGETS_FILE one target per line. RATE > 0 paces the load to RATE requests/s in all: each
-- thread hands out send times on a fixed schedule and a connection waits for its slot, so both
-- exporters can be compared at the same rate (as long as the connections suffice for it). Threads start at evenly spaced offsets. A response counts
-- as ok when it is a 200 whose body has `probe_success 1`. Prints one JSON line at the end.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long sec; long nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.sec) * 1000 + tonumber(ts.nsec) / 1e6
end

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   prefix = args[1]
   local n_threads = tonumber(args[3]) or 1
   targets = {}
   for line in io.lines(args[2]) do
      if line ~= "" then
         targets[#targets + 1] = line
      end
   end
   pos = math.floor(#targets * id / n_threads)
   ok, fail = 0, 0
   local rate = tonumber(args[4]) or 0
   interval = rate > 0 and (1000 * n_threads / rate) or 0
   slot = nil
   -- What Prometheus sends, minus gzip (so the body can be checked here; neither side
   -- compresses then).
   headers = {
      ["Accept"] = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
         .. "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
      ["X-Prometheus-Scrape-Timeout-Seconds"] = "10",
   }
end

function request()
   pos = pos % #targets + 1
   return wrk.format("GET", prefix .. targets[pos], headers)
end

function delay()
   if interval == 0 then
      return 0
   end
   local now = now_ms()
   slot = math.max(slot or now, now - 100) + interval -- no catching up on more than 100 ms
   return math.max(0, math.floor(slot - now))
end

function response(status, hdrs, body)
   if status == 200 and body and string.find(body, "\nprobe_success 1", 1, true) then
      ok = ok + 1
   else
      fail = fail + 1
   end
end

function done(summary, latency, requests)
   local n_ok, n_fail = 0, 0
   for _, t in ipairs(threads) do
      n_ok = n_ok + (t:get("ok") or 0)
      n_fail = n_fail + (t:get("fail") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"ok":%d,"fail":%d,"errors":%d,'
         .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, n_ok, n_fail,
      e.connect + e.read + e.write + e.status + e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
