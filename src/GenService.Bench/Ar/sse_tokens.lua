-- wrk script: each request streams one AR sample over SSE (a new seed per request) and the run counts the
-- `token` events it read. Used by ar_cpu_sweep.sh; the body's fields come from the environment:
--   AR_BODY_EXTRA  extra JSON fields, e.g. '"class_label": 3,' (default none)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local extra = os.getenv("AR_BODY_EXTRA") or ""
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

counter = 0
tokens = 0
failed = 0

request = function()
  counter = counter + 1
  local body = string.format('{%s"count": 1, "seed": %d, "temperature": 1.0, "stream": true}', extra, id * 10000000 + counter)
  return wrk.format(nil, nil, nil, body)
end

response = function(status, headers, body)
  if status ~= 200 or string.find(body, "event: error", 1, true) then
    failed = failed + 1
    return
  end
  local _, n = string.gsub(body, "event: token", "")
  tokens = tokens + n
end

done = function(summary, latency, requests)
  local t, f = 0, 0
  for _, th in ipairs(threads) do
    t = t + th:get("tokens")
    f = f + th:get("failed")
  end
  io.write(string.format("RESULT requests=%d tokens=%d failed=%d duration=%.3f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, t, f + summary.errors.status, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
