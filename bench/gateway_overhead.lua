-- wrk script for bench/gateway_overhead.sh: POSTs one chat completion request (a system and a user
-- message, about 600 bytes, no PII) to /v1/chat/completions, streamed when BENCH_STREAM=1, and
-- prints one line of figures that the script reads:
--   result requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=.. errors=E non2xx=X
local stream = os.getenv("BENCH_STREAM") == "1"

local body = [[{"model":"bench","messages":[]] ..
  [[{"role":"system","content":"You are a concise assistant for an engineering team. Answer ]] ..
  [[in plain English, in at most three sentences, and say so when you are not sure."},]] ..
  [[{"role":"user","content":"Our nightly build started failing after we upgraded the ]] ..
  [[compiler. The error is an unused-variable warning turned into an error by a flag in the ]] ..
  [[Makefile. What is the quickest safe way to get the build green again without hiding real ]] ..
  [[problems in the rest of the code base, and what should we follow up on next week?"}],]] ..
  [["max_tokens":64,"temperature":0]] .. (stream and [[,"stream":true}]] or [[}]])

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "result requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
