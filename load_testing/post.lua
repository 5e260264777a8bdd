-- wrk script of the benchmark: POST a JSON body, count answers by status and those that are
-- not JSON, and print one machine-readable line at the end.
-- Arguments (after "--"): [body] (default {"data": "example"}).
wrk.method = "POST"
wrk.body = '{"data": "example"}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
   non_json = 0
   if args[1] ~= nil and args[1] ~= "" then
      wrk.body = args[1]
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local media = headers["Content-Type"] or headers["content-type"] or ""
   if string.find(media, "json", 1, true) == nil or string.sub(body, 1, 1) ~= "{" then
      non_json = non_json + 1
   end
end

function done(summary, latency, requests)
   local counts = {}
   local bad = 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
      bad = bad + thread:get("non_json")
   end
   local parts = {}
   for status, n in pairs(counts) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "socket_errors": %d, "timeouts": %d, '
      .. '"non_json": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, bad,
      table.concat(parts, ", ")))
end
