-- wrk script: POST one Open Inference Protocol request from $BODY (JSON, or
-- the binary tensor extension when $HEADER_LEN holds its JSON header's
-- length) and print, at the end, the p50 of the server's own overhead: each
-- 200 response's Server-Timing total minus its infer, in microseconds.
-- usage: BODY=req.json wrk -t1 -c1 -d5s -s overhead.lua http://127.0.0.1:8000/v2/models/mlp/infer
wrk.method = "POST"
local headerLen = os.getenv("HEADER_LEN")
if headerLen then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = headerLen
else
  wrk.headers["Content-Type"] = "application/json"
end
local f = assert(io.open(assert(os.getenv("BODY"), "set BODY"), "rb"))
wrk.body = f:read("*all")
f:close()

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() overheads = {} end

function response(status, headers, body)
  local timing = headers["Server-Timing"]
  if status ~= 200 or not timing then return end
  local total = tonumber(timing:match("total;dur=([%d%.e%-]+)"))
  local infer = tonumber(timing:match("infer;dur=([%d%.e%-]+)"))
  if total and infer then overheads[#overheads + 1] = (total - infer) * 1000 end
end

function done()
  local all = {}
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("overheads")) do all[#all + 1] = v end
  end
  table.sort(all)
  if #all == 0 then
    io.write("overhead p50 us: none (no Server-Timing with total and infer)\n")
    return
  end
  io.write(string.format("overhead p50 us: %.1f of %d responses\n", all[math.ceil(#all / 2)], #all))
end
