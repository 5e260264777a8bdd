-- wrk script of the benchmark: POST a body, count answers by status, those that should be JSON
-- and are not, and the 2xx answers that are not what was expected; print one machine-readable
-- line at the end.
-- Arguments (after "--"), either:
--   [body]  a JSON body given inline (default {"data": "example"}); or
--   @<body file> <content type> <expected media type> <least body bytes> ["Name: value"]...
--     a body of any size and bytes read from a file (a command-line argument holds neither
--     150 KB nor a 0 byte), with its Content-Type and any extra headers.
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
   unexpected = 0
   expected_media = "json"
   least_bytes = 1
   local first = args[1]
   if first ~= nil and string.sub(first, 1, 1) == "@" then
      local file = assert(io.open(string.sub(first, 2), "rb"))
      wrk.body = file:read("*a")
      file:close()
      wrk.headers["Content-Type"] = args[2]
      expected_media = args[3]
      least_bytes = tonumber(args[4])
      for i = 5, #args do
         local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
         wrk.headers[name] = value
      end
   elseif first ~= nil and first ~= "" then
      wrk.body = first
   end
   expects_json = string.find(expected_media, "json", 1, true) ~= nil
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local media = headers["Content-Type"] or headers["content-type"] or ""
   local ok = status >= 200 and status < 300
   if (expects_json or not ok)
      and (string.find(media, "json", 1, true) == nil or string.sub(body, 1, 1) ~= "{") then
      non_json = non_json + 1
   end
   if ok and (string.find(media, expected_media, 1, true) == nil or #body < least_bytes) then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local counts = {}
   local bad_json, bad = 0, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
      bad_json = bad_json + thread:get("non_json")
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
      .. '"non_json": %d, "unexpected": %d, "bytes": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, bad_json,
      bad, summary.bytes, table.concat(parts, ", ")))
end
