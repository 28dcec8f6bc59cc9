-- wrk script for bench/run.sh. Environment:
--   BENCH_MODE  post | get | static
--   BENCH_KEY   the apiKey header
--   BENCH_PATH  static: the path; get: a pattern with {id} (e.g. /identities/{id})
--   BENCH_IDS   get: a file with one identity id per line
--   BENCH_BODY  post: a file with the JSON body; its "email" is replaced per request
--   BENCH_RUN   post: a tag that keeps emails unique across runs
-- done() prints one line `WRKJSON {...}` that run.sh parses.
local mode = os.getenv("BENCH_MODE") or "static"
local key = os.getenv("BENCH_KEY") or ""
local path = os.getenv("BENCH_PATH") or "/"
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local threads = {}
local counter = 0
-- `tid` is a global set per thread by setup()
local ids = {}
local body = nil

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) + math.floor(os.clock() * 1e6))
  wrk.headers["apiKey"] = key
  wrk.headers["Content-Type"] = "application/json"
  if mode == "get" then
    for line in io.lines(os.getenv("BENCH_IDS")) do
      if #line > 0 then ids[#ids + 1] = line end
    end
  elseif mode == "post" then
    local f = assert(io.open(os.getenv("BENCH_BODY"), "r"))
    body = f:read("*a")
    f:close()
  end
end

function request()
  if mode == "post" then
    counter = counter + 1
    local email = string.format("wrk-%s-%d-%d@bench.example", run, tid, counter)
    local b = string.gsub(body, '"email"%s*:%s*"[^"]*"', '"email":"' .. email .. '"', 1)
    return wrk.format("POST", path, nil, b)
  elseif mode == "get" then
    local id = ids[math.random(#ids)]
    return wrk.format("GET", (string.gsub(path, "{id}", id)))
  else
    return wrk.format("GET", path)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"status_errors":%d,"socket_errors":%d,"timeouts":%d,"bytes":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write, e.timeout, summary.bytes))
end
