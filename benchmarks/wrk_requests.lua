-- wrk script of the server cases: send the requests of a file in turn, count every response
-- that is not 2xx, and print the run's figures as one line of JSON.
--
--   wrk -t1 -c16 -d10s -s benchmarks/wrk_requests.lua http://127.0.0.1:8000 -- REQUESTS API_KEY
--
-- REQUESTS has one request a line: METHOD, a tab, the path and query, and for a request with a
-- body a tab and the body (JSON, which holds no raw tab or line feed). Each connection takes the
-- next request of the file, from the top again after the last. The requests are formatted once,
-- before the run, so that wrk spends nothing per request but sending them.
--
-- wrk counts socket errors and statuses over 399 itself; the response hook counts every status
-- outside 200-299. The last line of the output is "wrk-json: {...}", latencies in microseconds.

local requests = {}
local position = 0
non_2xx = 0
a_non_2xx_status = 0

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local key = args[2]
   for line in io.lines(args[1]) do
      local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
      local headers = { ["x-api-key"] = key }
      if body == "" then
         body = nil
      else
         headers["Content-Type"] = "application/json"
      end
      table.insert(requests, wrk.format(method, path, headers, body))
   end
   if #requests == 0 then
      error("no request in " .. args[1])
   end
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
      a_non_2xx_status = status
   end
end

function done(summary, latency, _)
   local bad, status = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non_2xx")
      if thread:get("a_non_2xx_status") ~= 0 then
         status = thread:get("a_non_2xx_status")
      end
   end
   local e = summary.errors
   io.write(string.format(
      'wrk-json: {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, '
         .. '"read": %d, "write": %d, "timeout": %d, "status": %d, "non_2xx": %d}, '
         .. '"a_non_2xx_status": %d, "latency_us": {"min": %d, "mean": %.1f, "max": %d, '
         .. '"p50": %d, "p90": %d, "p99": %d}}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout,
      e.status, bad, status, latency.min, latency.mean, latency.max, latency:percentile(50),
      latency:percentile(90), latency:percentile(99)))
end
