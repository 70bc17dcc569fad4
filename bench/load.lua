-- bench/load.lua - the wrk script of bench/load: POSTs one single-row
-- prediction per request, counts every reply by status in each thread,
-- stops a thread after MAX_REQUESTS replies (the run is bounded in requests
-- as well as in time), and prints one "LOAD {json}" line at the end:
-- requests, requests/s, latency percentiles (ms), socket errors and the
-- statuses seen.
--
-- Environment: LOAD_BODY (the JSON body), LOAD_KEY (a bearer token, may be
-- empty), LOAD_MAX_REQUESTS (per thread, default 10000000).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   counts = {}
   seen = 0
   limit = tonumber(os.getenv("LOAD_MAX_REQUESTS") or "") or 10000000
   wrk.method = "POST"
   wrk.body = os.getenv("LOAD_BODY")
   wrk.headers["Content-Type"] = "application/json"
   local key = os.getenv("LOAD_KEY")
   if key and key ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   seen = seen + 1
   if seen >= limit then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local c = t:get("counts")
      for status, n in pairs(c) do
         total[status] = (total[status] or 0) + n
      end
   end
   local statuses, non2xx = {}, 0
   for status, n in pairs(total) do
      table.insert(statuses, string.format('"%d": %d', status, n))
      if status < 200 or status > 299 then
         non2xx = non2xx + n
      end
   end
   table.sort(statuses)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'LOAD {"requests": %d, "seconds": %.2f, "requests_per_second": %.1f, ' ..
      '"latency_ms": {"p50": %.3f, "p99": %.3f, "p99.9": %.3f, "max": %.3f}, ' ..
      '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
      '"non_2xx": %d, "statuses": {%s}}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency:percentile(99.9) / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.timeout, non2xx, table.concat(statuses, ", ")))
end
