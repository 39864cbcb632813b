-- wrk load for bench/run: POSTs a 2,048-byte SOAP 1.2 body, rotating over the first NT sites of SITES_FILE,
-- and checks every response's identity. The site travels twice: in the selection header (orgproxy strips
-- it, nginx maps it) and as a path segment /dmp/<site id>/ that every proxy keeps and the upstream echoes
-- back (X-Req-Site). A response counts as:
--   ok       200, and the client certificate DN the upstream saw (X-Client-DN) has OU=<the requested site>
--            (or, with EXPECT_SITE set, the one fixed site's OU: nginx-fixed has a single certificate);
--   wrong    200 under another site's certificate: the failure this bench exists to catch;
--   failed   anything else: not 200, no DN, no echoed site (an answer without a DN is never a pass).
-- env: SITES_FILE (lines "<id> <sector>"), NT (sites to rotate), EXPECT_SITE (optional).
local sites_file = os.getenv("SITES_FILE")
local nt = tonumber(os.getenv("NT") or "1")
local expect_site = os.getenv("EXPECT_SITE")
if expect_site == "" then expect_site = nil end
local threads = {}
local counter = 0

local body = '<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:ns="urn:bench"><soap:Header/><soap:Body><ns:Request>'
for i = 1, 40 do body = body .. '<ns:Item id="' .. i .. '">value-' .. string.rep("x", 20) .. '</ns:Item>' end
body = body .. '</ns:Request></soap:Body></soap:Envelope>'
body = body .. string.rep(" ", 2048 - #body)

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local reqs, idx = {}, 0
ok, wrong, failed, newconn, resumed = 0, 0, 0, 0, 0

function init(args)
  local ids = {}
  for line in io.lines(sites_file) do
    if #ids >= nt then break end
    ids[#ids + 1] = line:match("^(%S+)")
  end
  for i, id in ipairs(ids) do
    reqs[i] = wrk.format("POST", "/dmp/" .. id .. "/soap", {
      ["Host"] = "localhost", ["X-Orgproxy-Tenant"] = id,
      ["Content-Type"] = 'application/soap+xml; charset=utf-8; action="urn:bench#op"'
    }, body)
  end
  nt = #reqs
  -- Threads start at different places in the rotation.
  idx = ((tid or 1) * 7919) % nt
end

function request()
  idx = idx % nt + 1
  return reqs[idx]
end

function response(status, headers, resp_body)
  local dn, site = headers["X-Client-DN"], headers["X-Req-Site"]
  if status ~= 200 or not dn or dn == "" or not site or site == "" then
    failed = failed + 1
  else
    local want = expect_site or site
    if string.find("," .. dn .. ",", ",OU=" .. want .. ",", 1, true) then ok = ok + 1 else wrong = wrong + 1 end
  end
  if headers["X-Up-Conn-Req"] == "1" then
    newconn = newconn + 1
    if headers["X-Up-Sess-Reused"] == "r" then resumed = resumed + 1 end
  end
end

function done(summary, latency, requests)
  local o, w, f, nc, rs = 0, 0, 0, 0, 0
  for _, th in ipairs(threads) do
    o = o + th:get("ok"); w = w + th:get("wrong"); f = f + th:get("failed")
    nc = nc + th:get("newconn"); rs = rs + th:get("resumed")
  end
  io.write(string.format("CHECK ok=%d wrong=%d failed=%d new_upstream_conn=%d resumed=%d\n", o, w, f, nc, rs))
end
