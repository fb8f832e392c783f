"""Lua scripts that make each queue operation one atomic step on the server.

A queue or stream named ``N`` uses three keys with the hash tag ``{N}``, so
they share one cluster slot and one script can touch them all:

- ``datafx:queue:{N}``: the Redis stream holding the messages (fields
  ``b`` body, ``h`` headers; the publish time is the id's millisecond part);
- ``datafx:queue:{N}:meta``: a hash with the declaration (``stream``,
  ``max_length``, ``overflow``, ``ttl_ms``);
- ``datafx:queue:{N}:delayed:<group>``: a sorted set of released messages,
  scored by the Unix time in milliseconds when they become ready again.

A released message stays in the group's pending entries list, owned by the
placeholder consumer ``datafx:released`` (moved there with ``XCLAIM ...
JUSTID``, which keeps its delivery count), until a fetch or a claim takes it.
Scripts report a missing queue with the error ``DATAFX_NOQUEUE`` and a full
queue with ``DATAFX_FULL``; Redis itself reports a missing group as ``NOGROUP``.
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "CLAIM",
    "CREATE_GROUP",
    "DECLARE",
    "EXTEND",
    "FETCH",
    "PUBLISH",
    "RELEASE",
    "RELEASED_CONSUMER",
    "SWEEP",
    "TRIM",
    "WAIT_HINT",
]

RELEASED_CONSUMER = "datafx:released"

# Helpers shared by the scripts below. ``now_ms`` reads the server clock so
# that every client agrees on lease and delay times.
_COMMON = """
local RELEASED = 'datafx:released'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function require_queue(meta)
  if redis.call('EXISTS', meta) == 0 then
    return false
  end
  return true
end

local function split_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function id_after(a, b)
  local ams, aseq = split_id(a)
  local bms, bseq = split_id(b)
  return ams > bms or (ams == bms and aseq > bseq)
end

local function field_map(flat)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

-- Acknowledge, in every group, pending entries older than the first stored
-- entry: they were trimmed, expired or deleted and can never be delivered.
local function drop_orphans(stream)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  local bound = '+'
  if #first > 0 then
    bound = '(' .. first[1][1]
  end
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name = field_map(group)['name']
    while true do
      local stale = redis.call('XPENDING', stream, name, '-', bound, 1000)
      if #stale == 0 then
        break
      end
      local ids = {}
      for i, entry in ipairs(stale) do
        ids[i] = entry[1]
      end
      redis.call('XACK', stream, name, unpack(ids))
      if #stale < 1000 then
        break
      end
    end
  end
end

-- Delete messages older than the queue's message TTL.
local function drop_expired(stream, meta, now)
  local ttl = tonumber(redis.call('HGET', meta, 'ttl_ms') or '0')
  if ttl > 0 then
    if redis.call('XTRIM', stream, 'MINID', tostring(now - ttl)) > 0 then
      drop_orphans(stream)
    end
  end
end

-- Claim one pending id for a consumer; returns {id, fields, count} or nil
-- when the stream entry is gone. Redis 7.0 then drops the id from the
-- pending list itself; the XACK makes sure of it on any server version.
local function claim_one(stream, group, consumer, id, previous_count)
  local claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)
  if #claimed == 0 or not claimed[1] then
    redis.call('XACK', stream, group, id)
    return nil
  end
  return {claimed[1][1], claimed[1][2], previous_count + 1}
end

-- Take released messages whose delay has passed.
local function take_released(stream, delayed, group, consumer, limit, now, out)
  if limit <= 0 then
    return
  end
  local ready = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ready) do
    redis.call('ZREM', delayed, id)
    local pending = redis.call('XPENDING', stream, group, id, id, 1)
    if #pending > 0 then
      local message = claim_one(stream, group, consumer, id, pending[1][4])
      if message then
        out[#out + 1] = message
      end
    end
  end
end

-- Take pending messages idle for at least min_idle ms, except released ones
-- still waiting for their delay; returns when out holds limit messages.
local function take_idle(stream, delayed, group, consumer, min_idle, limit, now, out)
  local start = '-'
  while #out < limit do
    local page_size = limit - #out + 16
    local page = redis.call('XPENDING', stream, group, 'IDLE', min_idle,
                            start, '+', page_size)
    for _, entry in ipairs(page) do
      if #out >= limit then
        break
      end
      local id = entry[1]
      local ready = true
      if entry[2] == RELEASED then
        local at = redis.call('ZSCORE', delayed, id)
        ready = (not at) or tonumber(at) <= now
        if ready then
          redis.call('ZREM', delayed, id)
        end
      end
      if ready then
        local message = claim_one(stream, group, consumer, id, entry[4])
        if message then
          out[#out + 1] = message
        end
      end
    end
    if #page < page_size then
      break
    end
    start = '(' .. page[#page][1]
  end
end
"""

DECLARE = (
    _COMMON
    + """
-- KEYS: stream, meta. ARGV: stream flag (0/1), max_length, overflow, ttl_ms, group.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], 'stream', ARGV[1], 'max_length', ARGV[2],
           'overflow', ARGV[3], 'ttl_ms', ARGV[4])
if ARGV[1] == '0' then
  -- A queue gets its shared group at once; MKSTREAM creates the stream, and
  -- a group left behind by an earlier queue of the same name (BUSYGROUP) is kept.
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[5], '0', 'MKSTREAM')
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  -- A stream starts with no group: create it through a temporary group.
  redis.call('XGROUP', 'CREATE', KEYS[1], 'datafx:init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'datafx:init')
end
return 1
"""
)

CREATE_GROUP = (
    _COMMON
    + """
-- KEYS: stream, meta. ARGV: group, start id. Returns 1 when created, 0 when it existed.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local reply = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
if type(reply) == 'table' and reply.err then
  if string.sub(reply.err, 1, 9) == 'BUSYGROUP' then
    return 0
  end
  return redis.error_reply(reply.err)
end
return 1
"""
)

PUBLISH = (
    _COMMON
    + """
-- KEYS: stream, meta. ARGV: body, headers. Returns the new id.
local meta = redis.call('HMGET', KEYS[2], 'max_length', 'overflow', 'ttl_ms')
if not meta[1] then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local max_length = tonumber(meta[1])
if tonumber(meta[3]) > 0 then
  drop_expired(KEYS[1], KEYS[2], now_ms())
end
if max_length == 0 then
  return redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 'h', ARGV[2])
end
local length = redis.call('XLEN', KEYS[1])
if meta[2] == 'reject-publish' and length >= max_length then
  return redis.error_reply('DATAFX_FULL ' .. max_length)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', max_length, '*',
                      'b', ARGV[1], 'h', ARGV[2])
if length >= max_length then
  drop_orphans(KEYS[1])
end
return id
"""
)

FETCH = (
    _COMMON
    + """
-- KEYS: stream, meta, delayed. ARGV: group, consumer, count, visibility ms
-- (-1: none). Deletes expired messages, then leases released messages whose
-- delay has passed and, with a visibility timeout, messages whose lease ran
-- out. New messages are read by the caller with XREADGROUP, which spares
-- the copy of every message body into Lua and back. Returns {messages,
-- 1 when the queue has a message TTL or else 0}.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local group, consumer = ARGV[1], ARGV[2]
local count, visibility = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
drop_expired(KEYS[1], KEYS[2], now)
local out = {}
take_released(KEYS[1], KEYS[3], group, consumer, count, now, out)
if visibility >= 0 and #out < count then
  take_idle(KEYS[1], KEYS[3], group, consumer, visibility, count, now, out)
end
-- The second value tells the caller whether the queue has a message TTL.
return {out, tonumber(redis.call('HGET', KEYS[2], 'ttl_ms') or '0') > 0 and 1 or 0}
"""
)

WAIT_HINT = (
    _COMMON
    + """
-- KEYS: stream, meta, delayed. ARGV: group, consumer, visibility ms (-1: none),
-- stale consumer ms. Runs when a fetch found nothing. Returns {last generated
-- id, ms until a pending message is ready (-1: none)}.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local group, consumer = ARGV[1], ARGV[2]
local visibility = tonumber(ARGV[3])
local now = now_ms()
-- Forget consumers that hold nothing and have not read for ARGV[4] ms
-- (workers that died or went away), so that group info counts live ones;
-- a returning consumer is created again by its next read.
for _, raw in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], group)) do
  local other = field_map(raw)
  if other['pending'] == 0 and other['idle'] > tonumber(ARGV[4])
     and other['name'] ~= RELEASED and other['name'] ~= consumer then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group, other['name'])
  end
end
local wait = -1
local next_release = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #next_release > 0 then
  wait = math.max(tonumber(next_release[2]) - now, 0)
end
if visibility >= 0 then
  for _, entry in ipairs(redis.call('XPENDING', KEYS[1], group, '-', '+', 100)) do
    if entry[2] ~= RELEASED then
      local left = math.max(visibility - entry[3], 0)
      if wait < 0 or left < wait then
        wait = left
      end
    end
  end
end
local info = field_map(redis.call('XINFO', 'STREAM', KEYS[1]))
return {info['last-generated-id'], wait}
"""
)

ACK = (
    _COMMON
    + """
-- KEYS: stream, meta, delayed. ARGV: group, ids... Returns how many were pending.
local group = ARGV[1]
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local acked = redis.call('XACK', KEYS[1], group, unpack(ids))
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZREM', KEYS[3], unpack(ids))
end
if redis.call('HGET', KEYS[2], 'stream') ~= '0' then
  return acked
end
-- A queue deletes a message once no group needs it any more.
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local removable = {}
for _, id in ipairs(ids) do
  local needed = false
  for _, raw in ipairs(groups) do
    local other = field_map(raw)
    if other['name'] ~= group then
      if id_after(id, other['last-delivered-id']) or
         #redis.call('XPENDING', KEYS[1], other['name'], id, id, 1) > 0 then
        needed = true
        break
      end
    end
  end
  if not needed then
    removable[#removable + 1] = id
  end
end
if #removable > 0 then
  redis.call('XDEL', KEYS[1], unpack(removable))
end
return acked
"""
)

RELEASE = (
    _COMMON
    + """
-- KEYS: stream, meta, delayed. ARGV: group, delay ms, ids...
local group = ARGV[1]
local ready_at = now_ms() + tonumber(ARGV[2])
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], group, id, id, 1) > 0 then
    redis.call('XCLAIM', KEYS[1], group, RELEASED, 0, id, 'JUSTID')
    redis.call('ZADD', KEYS[3], ready_at, id)
  end
end
return 0
"""
)

EXTEND = (
    _COMMON
    + """
-- KEYS: stream. ARGV: group, consumer, ids... Returns the ids still held by consumer.
local group, consumer = ARGV[1], ARGV[2]
local kept = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #pending > 0 and pending[1][2] == consumer then
    -- JUSTID resets the idle time and keeps the delivery count.
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, id, 'JUSTID')
    kept[#kept + 1] = id
  end
end
return kept
"""
)

CLAIM = (
    _COMMON
    + """
-- KEYS: stream, meta, delayed. ARGV: group, consumer, min idle ms, count.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local now = now_ms()
drop_expired(KEYS[1], KEYS[2], now)
local out = {}
take_idle(KEYS[1], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]),
          tonumber(ARGV[4]), now, out)
return out
"""
)

TRIM = (
    _COMMON
    + """
-- KEYS: stream, meta. ARGV: max length. Returns how many entries were removed.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
local removed = redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1]))
if removed > 0 then
  drop_orphans(KEYS[1])
end
return removed
"""
)

SWEEP = (
    _COMMON
    + """
-- KEYS: stream, meta. Deletes expired messages before the queue is inspected.
if not require_queue(KEYS[2]) then
  return redis.error_reply('DATAFX_NOQUEUE')
end
drop_expired(KEYS[1], KEYS[2], now_ms())
return 0
"""
)
