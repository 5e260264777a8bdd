-- wrk script of the benchmark for bodies of any size and bytes: POST the body read from a file,
-- with its Content-Type and any extra headers; count answers by status, and the 2xx answers
-- that are not what was expected (another media type, or a body shorter than the least an
-- answer must carry); print one machine-readable line at the end, as post.lua does.
-- Arguments (after "--"): <body file> <content type> <expected media type> <least body bytes>
-- ["Name: value"]... (a file, since a command-line argument holds neither 150 KB nor a 0 byte).
wrk.method = "POST"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
   unexpected = 0
   local file = assert(io.open(args[1], "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.headers["Content-Type"] = args[2]
   expected_media = args[3]
   least_bytes = tonumber(args[4])
   for i = 5, #args do
      local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
      wrk.headers[name] = value
   end
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status >= 200 and status < 300 then
      local media = headers["Content-Type"] or headers["content-type"] or ""
      if string.find(media, expected_media, 1, true) == nil or #body < least_bytes then
         unexpected = unexpected + 1
      end
   end
end

function done(summary, latency, requests)
   local counts = {}
   local bad = 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
      bad = bad + thread:get("unexpected")
   end
   local parts = {}
   for status, n in pairs(counts) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "socket_errors": %d, "timeouts": %d, '
      .. '"unexpected": %d, "bytes": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, bad,
      summary.bytes, table.concat(parts, ", ")))
end
