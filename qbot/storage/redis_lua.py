"""The Lua scripts of the Redis backend: every multi-step change, atomic on the server.

Each takes the storage's key prefix as ``ARGV[1]`` (or its keys as ``KEYS``); a room lease key is
the lease prefix the caller builds from :data:`qbot.storage.keys.ROOM_LEASE_PREFIX`, then the
room id, never a literal of its own. Key layout under the prefix ``P``:

```
P d:<key>          dedupe record (SET NX PX)
P s:<key>          state value
P l:<key>          lease holder (room leases: P l:room:<room_id>)
P i:r:<room>       a room's inbox stream (consumer group "qbot", consumer = owner)
P i:rooms          rooms with unacked items, by order of arrival of their oldest (ZSET)
P i:seq, P i:ev    the order counter; the stream of arrivals inbox_wait blocks on
P oi:<id>          one reply (HASH: room, payload, status, created)
P op, P opr:<room> pending reply ids, global and per room (ZSET by queue order)
P o:seq            the reply order counter
P h:<room>         a handoff (JSON [reason, started_at, expires_at])
```
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "CLAIM",
    "COMMIT",
    "INBOX_SIZE",
    "LOAD_ROOM",
    "MARK",
    "PUT",
    "PUT_HELD",
    "RELEASE",
    "RENEW",
]

PUT = """
local P, room = ARGV[1], ARGV[2]
if ARGV[5] ~= '' and not redis.call('SET', P..'d:'..ARGV[5], '1', 'NX', 'PX', ARGV[6]) then
  return false
end
local stream = P..'i:r:'..room
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, 'qbot', '0', 'MKSTREAM')
end
local id = redis.call('XADD', stream, '*', 'p', ARGV[3], 't', ARGV[4])
if not redis.call('ZSCORE', P..'i:rooms', room) then
  redis.call('ZADD', P..'i:rooms', redis.call('INCR', P..'i:seq'), room)
end
redis.call('XADD', P..'i:ev', 'MAXLEN', '~', '1000', '*', 'r', room)
return id
"""

# PUT, and when ARGV[7] holds the room's lease (ARGV[9]) and every entry of the room's stream was
# handed out already (none after the group's last delivered id), the new entry is read by the
# holder at once (XREADGROUP >: exactly it) and the lease set to ARGV[8] ms: {id, 1}. Else {id, 0}
# and the arrival is announced for a claim, as PUT does.
PUT_HELD = """
local P, room, owner = ARGV[1], ARGV[2], ARGV[7]
if ARGV[5] ~= '' and not redis.call('SET', P..'d:'..ARGV[5], '1', 'NX', 'PX', ARGV[6]) then
  return false
end
local stream, lease = P..'i:r:'..room, ARGV[9]
local held = redis.call('GET', lease) == owner
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, 'qbot', '0', 'MKSTREAM')
elseif held then
  local group = redis.call('XINFO', 'GROUPS', stream)[1]
  local last = '0-0'
  for i = 1, #group, 2 do
    if group[i] == 'last-delivered-id' then last = group[i + 1] end
  end
  if #redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1) > 0 then held = false end
end
local id = redis.call('XADD', stream, '*', 'p', ARGV[3], 't', ARGV[4])
if not redis.call('ZSCORE', P..'i:rooms', room) then
  redis.call('ZADD', P..'i:rooms', redis.call('INCR', P..'i:seq'), room)
end
if held then
  redis.call('XREADGROUP', 'GROUP', 'qbot', owner, 'COUNT', 1, 'STREAMS', stream, '>')
  redis.call('SET', lease, owner, 'PX', ARGV[8])
  return {id, 1}
end
redis.call('XADD', P..'i:ev', 'MAXLEN', '~', '1000', '*', 'r', room)
return {id, 0}
"""

CLAIM = """
local P, owner, ttl, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local LP = ARGV[6]
local out, n = {}, 0
for _, room in ipairs(redis.call('ZRANGE', P..'i:rooms', 0, tonumber(ARGV[5]) - 1)) do
  if n >= limit then break end
  local lease, stream = LP..room, P..'i:r:'..room
  local holder = redis.call('GET', lease)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('ZREM', P..'i:rooms', room)
  elseif not holder or holder == owner then
    local got, redelivered = {}, 0
    if holder == owner and ARGV[7] == '1' then
      -- the answer to this owner's last claim was lost: what it was given comes again first
      local r = redis.call('XREADGROUP', 'GROUP', 'qbot', owner, 'STREAMS', stream, '0')
      if r then for _, e in ipairs(r[1][2]) do got[#got + 1] = e end end
    end
    if not holder then
      local cursor = '0-0'
      repeat
        local r = redis.call('XAUTOCLAIM', stream, 'qbot', owner, 0, cursor, 'COUNT', 100)
        cursor = r[1]
        for _, e in ipairs(r[2]) do got[#got + 1] = e end
      until cursor == '0-0'
      -- entries still pending in the group were handed out before: redelivered now
      if #got > 0 then redelivered = 1 end
      -- every pending entry is ours now: forget consumers (dead owners) that hold nothing
      for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, 'qbot')) do
        if c[2] ~= owner and c[4] == 0 then
          redis.call('XGROUP', 'DELCONSUMER', stream, 'qbot', c[2])
        end
      end
    end
    if limit - n - #got > 0 then
      local r = redis.call('XREADGROUP', 'GROUP', 'qbot', owner, 'COUNT', limit - n - #got,
                           'STREAMS', stream, '>')
      if r then for _, e in ipairs(r[1][2]) do got[#got + 1] = e end end
    end
    if #got > 0 then
      redis.call('SET', lease, owner, 'PX', ttl)
      out[#out + 1] = {room, got, redis.call('EXISTS', P..'opr:'..room), redelivered}
      n = n + #got
    end
  end
end
return out
"""

# What a message's processing reads first: the handoff of room ARGV[2], then ARGV[3] state
# values (ARGV[4..]), then each reply id after them as its hash's flat field list ({} if none).
LOAD_ROOM = """
local P, n = ARGV[1], tonumber(ARGV[3])
local out = {redis.call('GET', P..'h:'..ARGV[2])}
for i = 4, 3 + n do out[#out + 1] = redis.call('GET', P..'s:'..ARGV[i]) end
for i = 4 + n, #ARGV do out[#out + 1] = redis.call('HGETALL', P..'oi:'..ARGV[i]) end
return out
"""

COMMIT = """
local P, spec = ARGV[1], cjson.decode(ARGV[2])
for _, a in ipairs(spec.acks) do
  local holder = redis.call('GET', spec.lease_prefix..a[1])
  if holder ~= spec.owner then return {'lost', a[1], holder or ''} end
end
for _, s in ipairs(spec.states) do
  local k = P..'s:'..s[1]
  if s[2] == false then redis.call('DEL', k)
  elseif s[3] ~= '' then redis.call('SET', k, s[2], 'PX', s[3])
  else redis.call('SET', k, s[2]) end
end
for _, o in ipairs(spec.outbox) do
  local k = P..'oi:'..o[1]
  local status = redis.call('HGET', k, 'status')
  if not status then
    if o[5] == 'pending' then
      local seq = redis.call('INCR', P..'o:seq')
      redis.call('HSET', k, 'room', o[2], 'payload', o[3], 'status', 'pending', 'created', o[4])
      redis.call('ZADD', P..'op', seq, o[1])
      redis.call('ZADD', P..'opr:'..o[2], seq, o[1])
    else
      redis.call('HSET', k, 'room', o[2], 'payload', o[3], 'status', o[5], 'created', o[4])
      redis.call('PEXPIRE', k, spec.retention)
    end
  elseif status == 'pending' and o[5] ~= 'pending' then
    redis.call('HSET', k, 'status', o[5])
    redis.call('ZREM', P..'op', o[1])
    redis.call('ZREM', P..'opr:'..redis.call('HGET', k, 'room'), o[1])
    redis.call('PEXPIRE', k, spec.retention)
  end
end
for _, a in ipairs(spec.acks) do
  local stream = P..'i:r:'..a[1]
  if redis.call('EXISTS', stream) == 1 then
    redis.call('XACK', stream, 'qbot', a[2])
    redis.call('XDEL', stream, a[2])
    if redis.call('XLEN', stream) == 0 then
      redis.call('DEL', stream)
      redis.call('ZREM', P..'i:rooms', a[1])
    end
  end
end
return {'ok'}
"""

MARK = """
local P, id = ARGV[1], ARGV[2]
local k = P..'oi:'..id
if redis.call('HGET', k, 'status') ~= 'pending' then return 0 end
local room = redis.call('HGET', k, 'room')
redis.call('HSET', k, 'status', ARGV[3])
redis.call('ZREM', P..'op', id)
redis.call('ZREM', P..'opr:'..room, id)
redis.call('PEXPIRE', k, ARGV[4])
return 1
"""

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

INBOX_SIZE = """
local n = 0
for _, room in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('XLEN', ARGV[1]..'i:r:'..room)
end
return n
"""
