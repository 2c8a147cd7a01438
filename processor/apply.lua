-- SPDX-License-Identifier: MIT
-- apply.lua: all of one room's Redis effects of one batch, in one EVALSHA.
--
-- KEYS[1] = "live:{ROOM}": the room channel and the prefix of every key the
--   script touches; all of them carry the same {ROOM} hash tag, so they live
--   in KEYS[1]'s cluster slot.
-- ARGV[1] = now (ms, the processor's clock; injected in tests)
-- ARGV[2] = the plan: a JSON array of ops (built by processor.c, see below)
-- ARGV[3], ARGV[4], ... = per message: msg_id, normalized JSON
--
-- Exactly once. First, per message, SET live:{ROOM}:seen:<msg_id> 1 NX EX
-- 7200; a message whose marker was new is XADDed to live:{ROOM}:messages and
-- PUBLISHed on live:{ROOM}; one whose marker existed does nothing. The C side
-- has already aggregated the batch: identical ops (same kind, key, field) are
-- one op carrying its total and its contributions as a flat list
-- {message index, amount, ...}. When every marker was new (the usual case)
-- the script applies the total; otherwise it sums only the contributions of
-- new messages. So a batch delivered twice changes nothing the second time,
-- and a batch that overlaps an earlier one counts only what is new.
--
-- An op is an array: {kind, key, field, total, ttl, contributions, extra}
--   hincr / zincr   HINCRBY / ZINCRBY key field sum
--   hmin / hmax     keep the smallest / largest value of field
--   hset            HSET key field extra, if any contribution is new
--   word            one hot word (field) in 10-second bucket `key`
--   pub             PUBLISH extra on live:{ROOM}[:key], if new
--   once            if new and SET key NX EX ttl: PUBLISH extra on the room
--   checkin         daily check-in of user hash key on day `total`
--   sess            HINCRBY the room's current session hash field sum
--   sess_start / sess_end   open (id = ts in total) / close the session
--
-- Hot words. Each word occurrence goes into a 10-second sub-bucket hash
-- live:{ROOM}:hotwords:b:<t/10000> and into the window sorted sets
-- live:{ROOM}:hotwords:1m|5m|30m. A window holds exactly the buckets after
-- its cursor live:{ROOM}:hotwords:cur:<w>, the last bucket already taken out
-- of it. The tick (run at the top of every call, and every second by the
-- processor for rooms that have gone quiet) moves each cursor to
-- now_bucket - span and subtracts every bucket it passes. Because the cursor
-- is stored next to the window and moved in the same atomic script, a bucket
-- is subtracted at most once, however many processors tick, however often;
-- an occurrence added later to a bucket at or before the cursor is not added
-- to that window (it already left it). Windows are thus exact sums of their
-- last 6 / 30 / 180 buckets, current to the tick (one second).
--
-- Trend: live:{ROOM}:hotwords:trend:1m and :trend:5m score each word by
-- (r_w - r_30) / (r_30 + 1), where r_w = window count / window minutes and
-- r_30 the same over 30 minutes, the room's baseline: 0 for a word as
-- frequent as usual, large for a word that is suddenly everywhere. Only the
-- words whose counts changed in this call are rescored, so the cost follows
-- the traffic, not the vocabulary (hotwords.c holds the same formula).

local base = KEYS[1]
local pre = base .. ':'
local now = tonumber(ARGV[1])
local plan = cjson.decode(ARGV[2])
local nmsg = (#ARGV - 2) / 2

local SEEN_TTL = 7200
local STREAM_MS = 300000
local HW_TTL = 1860
local SESSION_TTL = 7200
local BUCKET_MS = 10000
local WINDOWS = { {'1m', 6, 1}, {'5m', 30, 5}, {'30m', 180, 30} }

-- 1. markers, stream, channel
local fresh = {}
local nfresh = 0
for i = 1, nmsg do
  local id = ARGV[1 + 2 * i]
  if redis.call('SET', pre .. 'seen:' .. id, '1', 'NX', 'EX', SEEN_TTL) then
    fresh[i - 1] = true
    nfresh = nfresh + 1
    local json = ARGV[2 + 2 * i]
    redis.call('XADD', pre .. 'messages', '*', 'm', json)
    redis.call('PUBLISH', base, json)
  end
end
if nfresh > 0 then
  redis.call('XTRIM', pre .. 'messages', 'MINID', '~', tostring(now - STREAM_MS))
end
local allfresh = (nfresh == nmsg)

-- 2. hot-word tick: move the cursors, subtract the buckets they pass
local touched = {}
local ntouched = 0
local nowb = math.floor(now / BUCKET_MS)
local cursor = {}
for _, w in ipairs(WINDOWS) do
  local name, span = w[1], w[2]
  local ckey = pre .. 'hotwords:cur:' .. name
  local wkey = pre .. 'hotwords:' .. name
  local target = nowb - span
  local cur = tonumber(redis.call('GET', ckey))
  if cur == nil then
    cur = target
    redis.call('SET', ckey, cur, 'EX', HW_TTL)
  elseif cur < target then
    local from = cur + 1
    if from < target - 200 then from = target - 200 end
    local sub = false
    for b = from, target do
      local kv = redis.call('HGETALL', pre .. 'hotwords:b:' .. b)
      for j = 1, #kv, 2 do
        redis.call('ZINCRBY', wkey, -tonumber(kv[j + 1]), kv[j])
        if not touched[kv[j]] then touched[kv[j]] = true; ntouched = ntouched + 1 end
        sub = true
      end
    end
    if sub then redis.call('ZREMRANGEBYSCORE', wkey, '-inf', 0) end
    cur = target
    redis.call('SET', ckey, cur, 'EX', HW_TTL)
  end
  cursor[name] = cur
end

-- 3. the ops
local function sum(op)
  if allfresh then return op[4] end
  local c = op[6]
  local s = 0
  for j = 1, #c, 2 do
    if fresh[c[j]] then s = s + c[j + 1] end
  end
  return s
end
local function anyfresh(op)
  if allfresh then return nfresh > 0 end
  local c = op[6]
  for j = 1, #c, 2 do
    if fresh[c[j]] then return true end
  end
  return false
end
local function reduce(op, better)
  if allfresh then return op[4] end
  local c = op[6]
  local v = nil
  for j = 1, #c, 2 do
    if fresh[c[j]] and (v == nil or better(c[j + 1], v)) then v = c[j + 1] end
  end
  return v
end

local expire = {}
local session = nil
local function cur_session()
  if session == nil then
    session = redis.call('GET', pre .. 'session')
    if not session then
      session = 'd' .. math.floor(now / 86400000)
    end
  end
  return pre .. 'session:' .. session
end

local applied = 0
for _, op in ipairs(plan) do
  local kind, key, field, ttl = op[1], op[2], op[3], op[5]
  local did = false
  if kind == 'hincr' or kind == 'zincr' then
    local n = sum(op)
    if n ~= 0 then
      if kind == 'hincr' then
        redis.call('HINCRBY', pre .. key, field, n)
      else
        redis.call('ZINCRBY', pre .. key, n, field)
      end
      did = true
    end
  elseif kind == 'hmin' or kind == 'hmax' then
    local v
    if kind == 'hmin' then
      v = reduce(op, function(a, b) return a < b end)
    else
      v = reduce(op, function(a, b) return a > b end)
    end
    if v ~= nil then
      local old = tonumber(redis.call('HGET', pre .. key, field))
      if old == nil or (kind == 'hmin' and v < old) or (kind == 'hmax' and v > old) then
        redis.call('HSET', pre .. key, field, string.format('%d', v))
      end
      did = true
    end
  elseif kind == 'hset' then
    if anyfresh(op) then
      redis.call('HSET', pre .. key, field, op[7])
      did = true
    end
  elseif kind == 'word' then
    local n = sum(op)
    if n > 0 then
      local b = tonumber(key)
      local bkey = pre .. 'hotwords:b:' .. key
      redis.call('HINCRBY', bkey, field, n)
      if not expire[bkey] then
        expire[bkey] = true
        -- relative to the caller's clock (injected in tests), not Redis's
        local ms = (b + 1) * BUCKET_MS + HW_TTL * 1000 - now
        if ms < 1000 then ms = 1000 end
        redis.call('PEXPIRE', bkey, ms)
      end
      for _, w in ipairs(WINDOWS) do
        if b > cursor[w[1]] then
          redis.call('ZINCRBY', pre .. 'hotwords:' .. w[1], n, field)
        end
      end
      if not touched[field] then touched[field] = true; ntouched = ntouched + 1 end
    end
    ttl = 0
  elseif kind == 'pub' then
    if anyfresh(op) then
      if key == '' then
        redis.call('PUBLISH', base, op[7])
      else
        redis.call('PUBLISH', pre .. key, op[7])
      end
      did = true
    end
  elseif kind == 'once' then
    if anyfresh(op) and redis.call('SET', pre .. key, '1', 'NX', 'EX', ttl) then
      redis.call('PUBLISH', base, op[7])
      did = true
    end
    ttl = 0
  elseif kind == 'checkin' then
    if anyfresh(op) then
      local day = op[4]
      local h = redis.call('HMGET', pre .. key, 'last_day', 'streak', 'count')
      local last = tonumber(h[1])
      if last == nil or last < day then
        local streak = 1
        if last == day - 1 then streak = (tonumber(h[2]) or 0) + 1 end
        redis.call('HSET', pre .. key, 'last_day', day, 'streak', streak,
                   'count', (tonumber(h[3]) or 0) + 1)
      end
      did = true
    end
  elseif kind == 'sess' then
    local n = sum(op)
    if n ~= 0 then
      local skey = cur_session()
      redis.call('HINCRBY', skey, field, n)
      redis.call('HSET', skey, 'last_ts', now)
      redis.call('EXPIRE', skey, SESSION_TTL)
    end
    ttl = 0
  elseif kind == 'sess_start' then
    if anyfresh(op) then
      local sid = string.format('%d', op[4])
      redis.call('SET', pre .. 'session', sid, 'EX', SESSION_TTL)
      session = sid
      local skey = pre .. 'session:' .. sid
      redis.call('HSET', skey, 'id', sid, 'state', 'live', 'started', sid)
      redis.call('EXPIRE', skey, SESSION_TTL)
    end
    ttl = 0
  elseif kind == 'sess_end' then
    if anyfresh(op) then
      local skey = cur_session()
      redis.call('HSET', skey, 'state', 'ended', 'ended', string.format('%d', op[4]))
      redis.call('EXPIRE', skey, SESSION_TTL)
      redis.call('DEL', pre .. 'session')
      session = nil
    end
    ttl = 0
  end
  if did then
    applied = applied + 1
    if ttl and ttl > 0 then
      local k = pre .. key
      if not expire[k] then
        expire[k] = true
        redis.call('EXPIRE', k, ttl)
      end
    end
  end
end

-- 4. rescore the trend of every word whose window counts changed
if ntouched > 0 then
  local w1, w5, w30 = pre .. 'hotwords:1m', pre .. 'hotwords:5m', pre .. 'hotwords:30m'
  local t1, t5 = pre .. 'hotwords:trend:1m', pre .. 'hotwords:trend:5m'
  for word, _ in pairs(touched) do
    local c1 = tonumber(redis.call('ZSCORE', w1, word)) or 0
    local c5 = tonumber(redis.call('ZSCORE', w5, word)) or 0
    local c30 = tonumber(redis.call('ZSCORE', w30, word)) or 0
    local r30 = c30 / 30
    if c1 > 0 then
      redis.call('ZADD', t1, (c1 - r30) / (r30 + 1), word)
    else
      redis.call('ZREM', t1, word)
    end
    if c5 > 0 then
      redis.call('ZADD', t5, (c5 / 5 - r30) / (r30 + 1), word)
    else
      redis.call('ZREM', t5, word)
    end
  end
  for _, k in ipairs({w1, w5, w30, t1, t5}) do
    redis.call('EXPIRE', k, HW_TTL)
  end
end

return {nmsg, nfresh, applied}
