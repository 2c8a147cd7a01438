-- SPDX-License-Identifier: MIT
-- apply.lua: all of one room's Redis effects of one batch, in one EVALSHA.
--
-- KEYS[1] = "live:{ROOM}": the room channel and the prefix of every key the
--   script touches; all of them carry the same {ROOM} hash tag, so they live
--   in KEYS[1]'s cluster slot.
-- ARGV[1] = now (ms, the processor's clock; injected in tests)
-- ARGV[2] = the ops' contributions, in plan order, each ended by ';'
-- ARGV[3] = n, the number of messages
-- ARGV[4] = the messages' marker sets (ts / 600000) as runs, in message
--   order: "set:count," each; the messages of a call nearly all share one
--   set, and an argument per message cost Redis ~1,800 instructions
-- ARGV[5], ARGV[6], ... = per message: msg_id, normalized JSON: 2 * n
--   arguments
-- then the plan (built by processor.c, ops_plan), flat arguments read in
--   place, so that nothing is decoded (cjson.decode of a JSON plan was an
--   eighth of Redis's instructions at 20 messages a call); a call without
--   ops (the processor's tick) may end after the messages:
--   nw, then nw x (bucket, word, total)                      the word ops
--   no, then no x (kind, key, field, total, ttl, extra)      the others
--   ng, then ng x (key, shape, nf values, members)           the hash keys
--   where a shape is one argument of NUL-terminated elements: ttl, nf,
--   nf x (field, k), nm, nm x (hash field, sorted set, ttl, from); it is
--   what all users of a plugin have in common, read once per call
--   (shape()). A mirror's member is an argument when its from is 0, else
--   the key from byte from + 1 on (user:UID's member UID: from = 5, the
--   same for every user), which saves an argument per user.
--   Numbers are decimal integers, strings are passed as they are.
-- Returns {messages, new messages, ops applied, then the microseconds spent
-- in each phase: markers, tick (moving the cursors, reading the buckets they
-- pass), ops (with every hot-word bucket and window write), hash fields,
-- trend}.
--
-- Exactly once. First, per message, its marker: msg_id is added to the set
-- live:{ROOM}:seen:<ts/600000> (kept 2 hours after its last use); a message
-- whose marker was new is XADDed to live:{ROOM}:messages and PUBLISHed on
-- live:{ROOM}; one whose marker existed (or that came twice in the batch)
-- does nothing. The C side has already aggregated the batch: identical ops
-- (same kind, key, field) are one op carrying its total; its contributions
-- ("message index:amount,...;") come apart in ARGV[2]. When every marker was
-- new (the usual case) the script applies the total and never decodes the
-- contributions; otherwise it parses them and sums only those of new
-- messages. So a batch delivered twice changes nothing the second time,
-- and a batch that overlaps an earlier one counts only what is new.
--
-- The ops, by kind:
--   word            one hot word in 10-second bucket `bucket`; all of them
--                   are written after the loop (see Hot words)
--   hash key        every hash op of hash `key`, applied with one HMGET and
--                   one HSET: its fields (field, k, value) with k = i (add
--                   the sum), n / x (keep the smallest / largest), s (set
--                   the string, if any contribution is new; not written
--                   again when the key holds it already); its mirrors
--                   (counter field, sorted set, member, ttl): the member's
--                   score is set to the counter's new value (one ZADD per
--                   sorted set). Contributions: one per field.
--   zincr           ZINCRBY key sum field
--   pub             PUBLISH extra on live:{ROOM}[:key], if new
--   once            if new and SET key NX EX ttl: PUBLISH extra on the room
--   checkin         daily check-in of user hash key on day `total`
--   sess            add sum to field of the room's current session hash;
--                   the sess ops between two session changes are applied
--                   together: one HMGET, one HSET (with last_ts), one EXPIRE
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
-- A call gathers its hot-word changes in Lua and writes them per key, not
-- per word: a redis.call costs more than the small commands it runs here
-- (argv objects, the reply encoded and parsed back into Lua, propagation).
-- Each bucket: one HMGET of its words and one HSET of their new totals, one
-- PEXPIRE. Each window: the tick's subtractions and the ops' additions
-- summed per word, one ZMSCORE and one ZADD of the new scores (per 1000
-- words, as every unpack here, far below Lua's C stack limit); a window the
-- tick took something from is then swept of members at or below 0
-- (ZREMRANGEBYSCORE), and such a member counts as absent before the ops'
-- additions, as when the tick did a ZINCRBY per word and swept before them.
--
-- Trend: live:{ROOM}:hotwords:trend:1m and :trend:5m score each word by
-- (r_w - r_30) / (r_30 + 1), where r_w = window count / window minutes and
-- r_30 the same over 30 minutes, the room's baseline: 0 for a word as
-- frequent as usual, large for a word that is suddenly everywhere. Only the
-- words whose counts changed in this call are rescored, so the cost follows
-- the traffic, not the vocabulary (hotwords.c holds the same formula); their
-- window counts are those just written, and only the windows a word was not
-- written to are read (ZMSCORE).

local base = KEYS[1]
local pre = base .. ':'
local now = tonumber(ARGV[1])
local nargv = #ARGV

-- 0. check the arguments before the first write. Redis does not undo a
-- script's writes when it fails half-way (the markers would be set and the
-- retry would count nothing), so what could make a command fail must be
-- refused up front, with an error reply that starts with LTINVALID: the
-- processor then applies the call's messages in smaller groups and drops
-- only the one(s) refused alone. processor.c builds the plan and checks its
-- values (integers within 2^53: Redis renders a Lua number with %.17g and
-- HINCRBY refuses "4.6116860184273879e+18"; kinds, ttls): checking every op
-- again here cost a fifth of the script's instructions, so only the shape
-- of the call is checked: the counts, and that the plan's sections end
-- with the last argument.
local function invalid(what) return redis.error_reply('LTINVALID ' .. what) end
-- a count at ARGV[at], nil if there is none
local function count(at)
  local c = ARGV[at]
  if c == nil then return nil end
  c = tonumber(c)
  if c == nil or c ~= math.floor(c) or c < 0 then return nil end
  return c
end
if now == nil or now ~= math.floor(now) or now < 0 then return invalid('now') end
local nmsg = count(3)
if nmsg == nil or (nmsg == 0 and 3 or 4 + 2 * nmsg) > nargv then return invalid('argument count') end
-- msgset[i] = message i's marker set; the runs must cover the n messages
-- and nothing else
local msgset = {}
do
  local runs, i, len = ARGV[4] or '', 0, 0
  for sk, c in string.gmatch(runs, '(%d+):(%d+),') do
    len = len + #sk + #c + 2
    c = c + 0
    for j = i + 1, math.min(i + c, nmsg) do msgset[j] = sk end
    i = i + c
  end
  if i ~= nmsg or len ~= #runs then return invalid('marker sets') end
end
-- the plan's sections: where the word ops and the other ops start, and
-- each hash key
local nw, wpos, no, opos, ng, gpos = 0, 0, 0, 0, 0, {}
-- the shape of a hash key (see the header), parsed once per call: ttl, nf,
-- mo[r] / ma[r] where mirror r's member is (from in the key, or 0 and
-- the index of its argument among the key's nma member arguments),
-- f[j] / k[j] the fields, nm, mf[r] / mz[r] / mt[r] the mirrors, and
-- fm[j] = {r, ...} the mirrors of field j; nil if it is malformed
local shapes = {}
local function shape(s)
  local sh = shapes[s]
  if sh ~= nil or s == nil then return sh end
  local e, ne = {}, 0
  for x in string.gmatch(s, '([^%z]*)%z') do
    ne = ne + 1
    e[ne] = x
  end
  local nf = tonumber(e[2])
  if nf == nil or nf ~= math.floor(nf) or nf < 0 or ne < 3 + 2 * nf then return nil end
  local nm = tonumber(e[3 + 2 * nf])
  if nm == nil or nm ~= math.floor(nm) or nm < 0 or ne ~= 3 + 2 * nf + 4 * nm then return nil end
  local ttl = tonumber(e[1])
  if ttl == nil then return nil end
  sh = {ttl = e[1], ttln = ttl, nf = nf, nm = nm, nma = 0, f = {}, k = {}, fm = {}, mf = {}, mz = {}, mt = {},
        mo = {}, ma = {}}
  for j = 1, nf do
    sh.f[j], sh.k[j] = e[1 + 2 * j], e[2 + 2 * j]
    sh.fm[j] = {}
  end
  for r = 1, nm do
    local at = 2 * nf + 4 * r
    sh.mf[r], sh.mz[r], sh.mt[r] = e[at], e[at + 1], e[at + 2]
    local mo = tonumber(e[at + 3])
    if mo == nil or mo ~= math.floor(mo) or mo < 0 then return nil end
    sh.mo[r] = mo
    if mo == 0 then
      sh.nma = sh.nma + 1
      sh.ma[r] = sh.nma
    end
    for j = 1, nf do
      if sh.f[j] == e[at] then sh.fm[j][#sh.fm[j] + 1] = r end
    end
  end
  shapes[s] = sh
  return sh
end
do
  local q = 5 + 2 * nmsg
  if q <= nargv then
    nw = count(q)
    if nw == nil then return invalid('plan: word count') end
    wpos = q + 1
    q = wpos + 3 * nw
    no = count(q)
    if no == nil then return invalid('plan: op count') end
    opos = q + 1
    q = opos + 6 * no
    ng = count(q)
    if ng == nil then return invalid('plan: hash key count') end
    q = q + 1
    for g = 1, ng do
      gpos[g] = q
      local sh = shape(ARGV[q + 1])
      if sh == nil then return invalid('plan: hash key ' .. g) end
      q = q + 2 + sh.nf + sh.nma
    end
    if q ~= nargv + 1 then return invalid('plan: argument count') end
  end
end
for i = 1, nmsg do
  if ARGV[2 * i + 3] == '' then return invalid('message ' .. i) end
end
-- phase timings (microseconds), returned after the counts for benchmarks
local function usec()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end
local t_start = usec()

-- Numbers read from the plan: processor.c wrote them as decimal integers,
-- so they are converted with `+ 0`, not tonumber(): in Lua 5.1 tonumber of a
-- string converts it twice (lua_isnumber, then lua_tonumber), each a glibc
-- strtod of some 550 instructions; tonumber of such strings was 5 % of
-- Redis's instructions (20,000 messages, batches of 128). Values read back
-- from Redis keep tonumber(): they are not the plan's, and a stored value
-- that is not a number counts as absent, as it always has.
-- Numbers handed to redis.call: Redis renders a Lua number with
-- snprintf("%.17g") (7 % of its instructions at 20 messages a call when
-- every count went that way); int() renders an integer as the same text
-- for about a third of that, and the constant ttls are text already.
local floor, format = math.floor, string.format
local function int(n)
  if n ~= 0 and n == floor(n) and n < 9007199254740992 and n > -9007199254740992 then
    return format('%d', n)
  end
  return n -- a fraction, 0 (or -0), or beyond 2^53: as before
end
local SEEN_TTL = '7200'
local STREAM_MS = 300000
local HW_TTL = '1860'
local HW_TTL_MS = 1860000
local SESSION_TTL = '7200'
local BUCKET_MS = 10000
local WINDOWS = { {'1m', 6, 1}, {'5m', 30, 5}, {'30m', 180, 30} }

-- 1. markers, stream, channel. The markers of messages whose ts falls in
-- the same 10 minutes share one set live:{ROOM}:seen:<ts/600000>, so a batch
-- costs one SMISMEMBER and one SADD per set instead of a SET per message
-- (and a member is about half the memory of a key). Each touched set is kept
-- SEEN_TTL seconds after its last use; a redelivered message has the same ts,
-- hence the same set.
local fresh = {}
local nfresh = 0
local byset, setorder = {}, {}
for i = 1, nmsg do
  local sk = msgset[i]
  local g = byset[sk]
  if g == nil then
    g = {}
    byset[sk] = g
    setorder[#setorder + 1] = sk
  end
  g[#g + 1] = i
end
for _, sk in ipairs(setorder) do
  local g = byset[sk]
  local key = pre .. 'seen:' .. sk
  local added, inbatch = {}, {}
  for from = 1, #g, 1000 do
    local ids = {}
    for j = from, math.min(from + 999, #g) do ids[#ids + 1] = ARGV[2 * g[j] + 3] end
    local member = redis.call('SMISMEMBER', key, unpack(ids))
    for j = 1, #ids do
      local id = ids[j]
      if member[j] == 0 and not inbatch[id] then
        inbatch[id] = true
        local i = g[from + j - 1]
        fresh[i - 1] = true
        nfresh = nfresh + 1
        added[#added + 1] = id
      end
    end
  end
  for from = 1, #added, 1000 do
    redis.call('SADD', key, unpack(added, from, math.min(from + 999, #added)))
  end
  if #added > 0 then redis.call('EXPIRE', key, SEEN_TTL) end
end
local stream = pre .. 'messages'
for i = 1, nmsg do
  if fresh[i - 1] then
    local json = ARGV[2 * i + 4]
    redis.call('XADD', stream, '*', 'm', json)
    redis.call('PUBLISH', base, json)
  end
end
if nfresh > 0 then
  redis.call('XTRIM', stream, 'MINID', '~', tostring(now - STREAM_MS))
end
local allfresh = (nfresh == nmsg)

local t_marked = usec()

-- 2. hot-word tick: move the cursors, read the buckets they pass; the
-- windows are written with the ops' additions, after the ops (see Hot words).
-- Words are numbered in the order first met (hw_words[i], hw_index[word] =
-- i) and the per-window amounts kept in arrays indexed by that number:
-- cheaper in Lua than a table keyed by word per window, walked without
-- pairs(), and the order of the writes does not depend on hashing.
local hw_words, hw_index = {}, {}
local function hw_word(word)
  local i = hw_index[word]
  if i == nil then
    i = #hw_words + 1
    hw_words[i] = word
    hw_index[word] = i
  end
  return i
end
local nowb = math.floor(now / BUCKET_MS)
local cursor = {}
local tickd, addd = {}, {}  -- per window: word number -> amount to take out / add
local swept = {}            -- per window: the tick took something out of it
local buckets = {}          -- bucket number -> HGETALL reply, read once
for wi, w in ipairs(WINDOWS) do
  local name, span = w[1], w[2]
  local ckey = pre .. 'hotwords:cur:' .. name
  local target = nowb - span
  local cur = tonumber(redis.call('GET', ckey))
  local sub = {}
  if cur == nil then
    cur = target
    redis.call('SET', ckey, int(cur), 'EX', HW_TTL)
  elseif cur < target then
    local from = cur + 1
    if from < target - 200 then from = target - 200 end
    for b = from, target do
      local kv = buckets[b]
      if kv == nil then
        kv = redis.call('HGETALL', pre .. 'hotwords:b:' .. b)
        buckets[b] = kv
      end
      for j = 1, #kv, 2 do
        local i = hw_word(kv[j])
        sub[i] = (sub[i] or 0) + tonumber(kv[j + 1])
        swept[wi] = true
      end
    end
    cur = target
    redis.call('SET', ckey, int(cur), 'EX', HW_TTL)
  end
  cursor[wi] = cur
  tickd[wi] = sub
  addd[wi] = {}
end

local t_ticked = usec()

-- 3. the ops
-- Contributions come in ARGV[2] as "idx:amount,idx:amount,...;" per op (and
-- per field of a hash key), in plan order, parsed only when some marker was
-- not new: in the usual all-new batch the script reads the totals and never
-- pays for the per-message detail.
local cl = nil
if not allfresh then
  cl = {}
  for s in string.gmatch(ARGV[2] or '', '([^;]*);') do
    local t = {}
    for i, a in string.gmatch(s, '(%-?%d+):(%-?%d+)') do
      t[#t + 1] = tonumber(i)
      t[#t + 1] = tonumber(a)
    end
    cl[#cl + 1] = t
  end
end
local ci = 0 -- contributions taken so far, in plan order
local function contribs()
  ci = ci + 1
  return cl[ci] or {}
end
-- the sum of an op's new contributions c (total: the op's, when all are
-- new and c is nil)
local function sum(total, c)
  if allfresh then return total + 0 end
  local s = 0
  for j = 1, #c, 2 do
    if fresh[c[j]] then s = s + c[j + 1] end
  end
  return s
end
local function anyfresh(c)
  if allfresh then return nfresh > 0 end
  for j = 1, #c, 2 do
    if fresh[c[j]] then return true end
  end
  return false
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
-- the session counters added since the last session change: applied
-- together (sess_flush) before the next change and after the ops, one
-- HMGET, one HSET and one EXPIRE instead of an HINCRBY, an HSET of last_ts
-- and an EXPIRE per field. last_ts goes second in the HSET, as it came
-- after the first field's HINCRBY, so a new hash has its fields in the same
-- order.
local sess_f, sess_n, sess_at, sess_k = {}, {}, {}, 0
local function sess_flush()
  if sess_k == 0 then return end
  local skey = cur_session()
  local got = redis.call('HMGET', skey, unpack(sess_f, 1, sess_k))
  local hs = {sess_f[1], int((tonumber(got[1]) or 0) + sess_n[1]), 'last_ts', int(now)}
  for q = 2, sess_k do
    hs[2 * q + 1], hs[2 * q + 2] = sess_f[q], int((tonumber(got[q]) or 0) + sess_n[q])
  end
  redis.call('HSET', skey, unpack(hs, 1, 2 * sess_k + 2))
  redis.call('EXPIRE', skey, SESSION_TTL)
  sess_f, sess_n, sess_at, sess_k = {}, {}, {}, 0
end

local expire_later = {}
local bucketw, bucketorder = {}, {}
local mirrors, mirror_keys, mirror_ttl = {}, {}, {}
local applied = 0
-- the word ops: gathered here, written after the loop: one HMGET and one
-- HSET per bucket, one ZMSCORE and one ZADD per window
for at = wpos, wpos + 3 * nw - 1, 3 do
  local n = sum(ARGV[at + 2], cl and contribs())
  if n > 0 then
    local key = ARGV[at]
    local bw = bucketw[key]
    if bw == nil then
      bw = {b = key + 0, idx = {}, add = {}}
      bucketw[key] = bw
      bucketorder[#bucketorder + 1] = key
    end
    local i = hw_word(ARGV[at + 1])
    local prev = bw.add[i]
    if prev == nil then
      bw.idx[#bw.idx + 1] = i
      bw.add[i] = n
    else
      bw.add[i] = prev + n
    end
    local b = bw.b
    if b > cursor[1] then addd[1][i] = (addd[1][i] or 0) + n end
    if b > cursor[2] then addd[2][i] = (addd[2][i] or 0) + n end
    if b > cursor[3] then addd[3][i] = (addd[3][i] or 0) + n end
  end
end
-- the other ops, in order
for at = opos, opos + 6 * no - 1, 6 do
  local kind, key, field, ttl = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 4]
  local c = cl and contribs() -- nil when all markers were new
  local did = false
  if kind == 'zincr' then
    local n = sum(ARGV[at + 3], c)
    if n ~= 0 then
      redis.call('ZINCRBY', pre .. key, int(n), field)
      did = true
    end
  elseif kind == 'pub' then
    if anyfresh(c) then
      if key == '' then
        redis.call('PUBLISH', base, ARGV[at + 5])
      else
        redis.call('PUBLISH', pre .. key, ARGV[at + 5])
      end
      did = true
    end
  elseif kind == 'once' then
    if anyfresh(c) and redis.call('SET', pre .. key, '1', 'NX', 'EX', ttl) then
      redis.call('PUBLISH', base, ARGV[at + 5])
      did = true
    end
    ttl = '0'
  elseif kind == 'checkin' then
    if anyfresh(c) then
      local day = tonumber(ARGV[at + 3])
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
    local n = sum(ARGV[at + 3], c)
    if n ~= 0 then
      local q = sess_at[field]
      if q == nil then
        sess_k = sess_k + 1
        q = sess_k
        sess_at[field], sess_f[q], sess_n[q] = q, field, 0
      end
      sess_n[q] = sess_n[q] + n
    end
    ttl = '0'
  elseif kind == 'sess_start' then
    if anyfresh(c) then
      sess_flush()
      local sid = string.format('%d', tonumber(ARGV[at + 3]))
      redis.call('SET', pre .. 'session', sid, 'EX', SESSION_TTL)
      session = sid
      local skey = pre .. 'session:' .. sid
      redis.call('HSET', skey, 'id', sid, 'state', 'live', 'started', sid)
      redis.call('EXPIRE', skey, SESSION_TTL)
    end
    ttl = '0'
  elseif kind == 'sess_end' then
    if anyfresh(c) then
      sess_flush()
      local skey = cur_session()
      redis.call('HSET', skey, 'state', 'ended', 'ended', string.format('%d', tonumber(ARGV[at + 3])))
      redis.call('EXPIRE', skey, SESSION_TTL)
      redis.call('DEL', pre .. 'session')
      session = nil
    end
    ttl = '0'
  end
  if did then
    applied = applied + 1
    if ttl + 0 > 0 then
      local k = pre .. key
      if not expire[k] then
        expire[k] = true
        expire_later[#expire_later + 1] = k
        expire_later[#expire_later + 1] = ttl
      end
    end
  end
end
sess_flush()

-- fn(names, nn, from) for the words hw_words[idx[from]], ... of idx[1..n],
-- at most 1000 at a time, so that unpack stays far below Lua's C stack limit
local function word_chunks(idx, n, fn)
  for from = 1, n, 1000 do
    local names, nn = {}, 0
    for j = from, math.min(from + 999, n) do
      nn = nn + 1
      names[nn] = hw_words[idx[j]]
    end
    fn(names, nn, from)
  end
end

-- hot-word buckets: each bucket's fresh words read with one HMGET and
-- written back with one HSET of the new totals (integers well below 2^53,
-- exact as %.17g); the TTL is set once per bucket and call
for _, key in ipairs(bucketorder) do
  local bw = bucketw[key]
  local bkey = pre .. 'hotwords:b:' .. key
  local idx, add = bw.idx, bw.add
  word_chunks(idx, #idx, function(names, nn, from)
    local got = redis.call('HMGET', bkey, unpack(names, 1, nn))
    local hs = {}
    for q = 1, nn do
      hs[2 * q - 1] = names[q]
      hs[2 * q] = int((tonumber(got[q]) or 0) + add[idx[from + q - 1]])
    end
    redis.call('HSET', bkey, unpack(hs, 1, 2 * nn))
  end)
  -- relative to the caller's clock (injected in tests), not Redis's
  local ms = (bw.b + 1) * BUCKET_MS + HW_TTL_MS - now
  if ms < 1000 then ms = 1000 end
  redis.call('PEXPIRE', bkey, int(ms))
end

-- windows: one ZMSCORE of the words that change and one ZADD of their new
-- scores. The tick used to ZINCRBY each word down and then remove every
-- member at or below 0 (ZREMRANGEBYSCORE -inf 0) before this call's
-- additions: so in a window the tick took something from, a score at or
-- below 0 counts as absent before the additions, and the same sweep follows
-- the ZADD (it removes the words written as 0, and any other member at or
-- below 0, as before). Elsewhere the additions go on the stored score as
-- ZINCRBY did. The new scores (false: absent) are kept for the trend.
local nhw = #hw_words
local score = {}
for wi, w in ipairs(WINDOWS) do
  local sub, a, sweep = tickd[wi], addd[wi], swept[wi]
  local known = {}
  score[wi] = known
  local list, nl = {}, 0
  for i = 1, nhw do
    if sub[i] ~= nil or a[i] ~= nil then
      nl = nl + 1
      list[nl] = i
    end
  end
  local wkey = pre .. 'hotwords:' .. w[1]
  word_chunks(list, nl, function(names, nn, from)
    local got = redis.call('ZMSCORE', wkey, unpack(names, 1, nn))
    local zs = {}
    for q = 1, nn do
      local i = list[from + q - 1]
      local v = (tonumber(got[q]) or 0) - (sub[i] or 0)
      if sweep and v <= 0 then v = 0 end
      v = v + (a[i] or 0)
      zs[2 * q - 1], zs[2 * q] = int(v), names[q]
      if sweep and v <= 0 then known[i] = false else known[i] = v end
    end
    redis.call('ZADD', wkey, unpack(zs, 1, 2 * nn))
  end)
  if sweep then redis.call('ZREMRANGEBYSCORE', wkey, '-inf', 0) end
end

local t_ops = usec()

-- hash keys (incr/min/max/set): one HMGET (old values, strings included)
-- and one HSET per key, of the fields that change: a string equal to the
-- stored one is left alone (a user's name, the same in nearly every
-- message; 3.5 % fewer Redis instructions with the tonumber() savings,
-- 20,000 messages in batches of 128), but the key still counts as applied
-- and has its TTL refreshed, as when the name was written again. Numbers go
-- to redis.call as Lua numbers (Redis renders them with %.17g: exact for
-- integers below 2^53, as counters and ms timestamps are).
-- A mirror sets a sorted-set member's score from a counter's new value (a
-- ranking such as user_stats = each user's messages), all members of a set
-- in one ZADD instead of a ZINCRBY per member.
-- The common all-new case reads every value straight from the plan's
-- arguments and allocates nothing per key (want, args and vals are reused,
-- with explicit counts).
local function partial(kind, c)
  local pv = nil
  for q = 1, #c, 2 do
    if fresh[c[q]] then
      local a = c[q + 1]
      if kind == 'i' then
        pv = (pv or 0) + a
      elseif kind == 's' or pv == nil or (kind == 'n' and a < pv) or (kind == 'x' and a > pv) then
        pv = a
      end
    end
  end
  return pv
end
local want, args, vals = {}, {}, {}
for g = 1, ng do
  local at = gpos[g]
  local hkey = pre .. ARGV[at]
  local sh = shapes[ARGV[at + 1]]
  local f, k, nf, v0 = sh.f, sh.k, sh.nf, at + 1 -- field j's value: ARGV[v0 + j]
  local m0 = v0 + nf                               -- member argument a: ARGV[m0 + a]
  local nw = 0
  for j = 1, nf do
    local kind, v = k[j], ARGV[v0 + j]
    if allfresh then
      -- n / x go to HSET as the plan's text (what %.17g makes of them)
      if kind == 'i' then
        v = v + 0
        if v == 0 then v = nil end
      end
    else
      local pv = partial(kind, contribs())
      if kind ~= 's' or pv == nil then v = pv end
      if kind == 'i' and v == 0 then v = nil end
    end
    vals[j] = v
    if v ~= nil then
      nw = nw + 1
      want[nw] = f[j]
    end
  end
  local got
  if nw > 0 then got = redis.call('HMGET', hkey, unpack(want, 1, nw)) end
  -- touched: the key has a field to set (or one already so): it counts as
  -- applied and its TTL is refreshed, whether or not the HSET writes it
  local na, wi, recent, touched = 0, 0, false, false
  for j = 1, nf do
    local v = vals[j]
    if v ~= nil then
      local name, kind = f[j], k[j]
      wi = wi + 1
      if kind == 's' then
        -- a string already stored (a user's name, the same in nearly every
        -- message) is not written again: read with the counters, it saves
        -- the HSET two arguments and the AOF their bytes
        touched = true
        if got[wi] ~= v then
          args[na + 1], args[na + 2] = name, v
          na = na + 2
        end
      else
        local o = tonumber(got[wi])
        if kind == 'i' then
          v = int((o or 0) + v)
          args[na + 1], args[na + 2] = name, v
          na = na + 2
          local fm = sh.fm[j]
          for q = 1, #fm do
            local r = fm[q]
            local zkey = sh.mz[r]
            local list = mirrors[zkey]
            if list == nil then
              list = {}
              mirrors[zkey] = list
              mirror_keys[#mirror_keys + 1] = zkey
              mirror_ttl[zkey] = sh.mt[r]
            end
            list[#list + 1] = v
            local mo = sh.mo[r]
            if mo > 0 then
              list[#list + 1] = string.sub(ARGV[at], mo + 1)
            else
              list[#list + 1] = ARGV[m0 + sh.ma[r]]
            end
          end
        else
          -- a key whose hmax field (last_seen) was already within the last
          -- minute had its TTL refreshed then: skip this call's EXPIRE
          if kind == 'x' and o ~= nil and o >= now - 60000 then recent = true end
          if o == nil or (kind == 'n' and v + 0 < o) or (kind == 'x' and v + 0 > o) then
            args[na + 1], args[na + 2] = name, v
            na = na + 2
          end
        end
      end
    end
  end
  if na > 0 then redis.call('HSET', hkey, unpack(args, 1, na)) end
  if na > 0 or touched then
    applied = applied + 1
    if sh.ttln > 0 and not recent then
      expire_later[#expire_later + 1] = hkey
      expire_later[#expire_later + 1] = sh.ttl
    end
  end
end
for _, zkey in ipairs(mirror_keys) do
  local pairs_ = mirrors[zkey]
  for from = 1, #pairs_, 2000 do
    redis.call('ZADD', pre .. zkey, unpack(pairs_, from, math.min(from + 1999, #pairs_)))
  end
  if tonumber(mirror_ttl[zkey]) > 0 then redis.call('EXPIRE', pre .. zkey, mirror_ttl[zkey]) end
end

for j = 1, #expire_later, 2 do
  redis.call('EXPIRE', expire_later[j], expire_later[j + 1])
end

local t_deferred = usec()

-- 4. rescore the trend of every word whose window counts changed
if nhw > 0 then
  local t1, t5 = pre .. 'hotwords:trend:1m', pre .. 'hotwords:trend:5m'
  -- the scores the windows were written with are known; fetch only the
  -- others (a word the tick took out of 1m only, or one added behind every
  -- cursor)
  for wi, w in ipairs(WINDOWS) do
    local known, miss, nm = score[wi], {}, 0
    for i = 1, nhw do
      if known[i] == nil then
        nm = nm + 1
        miss[nm] = i
      end
    end
    local wkey = pre .. 'hotwords:' .. w[1]
    word_chunks(miss, nm, function(names, nn, from)
      local got = redis.call('ZMSCORE', wkey, unpack(names, 1, nn))
      for q = 1, nn do
        known[miss[from + q - 1]] = tonumber(got[q]) or false
      end
    end)
  end
  local k1, k5, k30 = score[1], score[2], score[3]
  for from = 1, nhw, 1000 do
    local add1, add5, rem1, rem5 = {}, {}, {}, {}
    local n1, n5, r1, r5 = 0, 0, 0, 0
    for i = from, math.min(from + 999, nhw) do
      local word = hw_words[i]
      local c1, c5, c30 = k1[i] or 0, k5[i] or 0, k30[i] or 0
      local r30 = c30 / 30
      if c1 > 0 then
        add1[n1 + 1], add1[n1 + 2] = (c1 - r30) / (r30 + 1), word
        n1 = n1 + 2
      else
        r1 = r1 + 1
        rem1[r1] = word
      end
      if c5 > 0 then
        add5[n5 + 1], add5[n5 + 2] = (c5 / 5 - r30) / (r30 + 1), word
        n5 = n5 + 2
      else
        r5 = r5 + 1
        rem5[r5] = word
      end
    end
    if n1 > 0 then redis.call('ZADD', t1, unpack(add1, 1, n1)) end
    if n5 > 0 then redis.call('ZADD', t5, unpack(add5, 1, n5)) end
    if r1 > 0 then redis.call('ZREM', t1, unpack(rem1, 1, r1)) end
    if r5 > 0 then redis.call('ZREM', t5, unpack(rem5, 1, r5)) end
  end
  for _, k in ipairs({pre .. 'hotwords:1m', pre .. 'hotwords:5m', pre .. 'hotwords:30m', t1, t5}) do
    redis.call('EXPIRE', k, HW_TTL)
  end
end

local t_end = usec()
return {nmsg, nfresh, applied, t_marked - t_start, t_ticked - t_marked, t_ops - t_ticked,
        t_deferred - t_ops, t_end - t_deferred}
