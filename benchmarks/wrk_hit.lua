-- wrk script for benchmarks/hits.py: POST a cache-hit request, rotating through session ids.
--
-- Usage: wrk -t1 -c50 -d10s --latency -s benchmarks/wrk_hit.lua URL -- IDS_FILE PARENT_ID ACTION
-- URL is the chunk route (http://127.0.0.1:P/api/memories/<id>/chunks?inline=false); IDS_FILE
-- has one session id a line. One counter per wrk thread walks the sessions round-robin, so the
-- connections of a thread share the rotation. Bodies are prebuilt in init() so request() only
-- picks one (wrk's own CPU stays small next to the server's on a shared 2-core machine).

local bodies = {}
local n = 0
local i = 0

function init(args)
  local ids_file, parent, action = args[1], args[2], args[3] or "w"
  for line in io.lines(ids_file) do
    if #line > 0 then
      n = n + 1
      bodies[n] = string.format(
        '{"parent_chunk_id": "%s", "action": "%s", "session_id": "%s"}', parent, action, line)
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i + 1
  local body = bodies[((i - 1) % n) + 1]
  return wrk.format(nil, nil, nil, body)
end
