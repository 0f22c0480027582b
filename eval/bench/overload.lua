-- wrk script for eval/bench/overload.sh: posts drafts, counts statuses,
-- checks that every 503 carries Retry-After, and collects the server-side
-- latency (queued_ms + total_ms) of every accepted (2xx) request.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  no_retry_after = 0
  lat = {}
  n = 0
  msgs = {
    "My playlist disappeared after the update and I am really annoyed.",
    "Where is my refund? It has been two weeks.",
    "The app keeps crashing when I open my library.",
    "Thanks so much, the new feature is great!",
    "I was charged twice this month, please fix it.",
  }
end

function request()
  n = n + 1
  local body = string.format('{"brand":"tunely","channel":"twitter","message":"%s","n":1,"max_tokens":48,"seed":%d}', msgs[(n % #msgs) + 1], n)
  return wrk.format("POST", "/v1/drafts", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    no_retry_after = no_retry_after + 1
  end
  if status >= 200 and status < 300 then
    local q = tonumber(string.match(body, '"queued_ms":([%d%.]+)')) or 0
    local t = tonumber(string.match(body, '"total_ms":([%d%.]+)')) or 0
    table.insert(lat, q + t)
  end
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.ceil(p / 100 * #sorted))
  return sorted[i]
end

function done(summary, latency, requests)
  local all_status, all_lat, missing = {}, {}, 0
  for _, t in ipairs(threads) do
    for code, c in pairs(t:get("statuses")) do
      all_status[code] = (all_status[code] or 0) + c
    end
    for _, v in ipairs(t:get("lat")) do
      table.insert(all_lat, v)
    end
    missing = missing + t:get("no_retry_after")
  end
  table.sort(all_lat)
  local codes = {}
  for code, c in pairs(all_status) do table.insert(codes, string.format('"%d": %d', code, c)) end
  table.sort(codes)
  local e = summary.errors
  io.write(string.format('OVERLOAD_RESULT {"requests": %d, "statuses": {%s}, "no_retry_after_503": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "accepted": %d, ' ..
    '"accepted_server_ms": {"p50": %.0f, "p99": %.0f, "max": %.0f}, "all_client_ms": {"p50": %.0f, "p99": %.0f}}\n',
    summary.requests, table.concat(codes, ", "), missing, e.connect, e.read, e.write, e.timeout, #all_lat,
    pct(all_lat, 50), pct(all_lat, 99), all_lat[#all_lat] or 0,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
