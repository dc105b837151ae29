"""The Lua scripts behind the fleet: each one reads and writes its keys in one atomic step.

Redis runs a script without interleaving any other command, so a check and the write that depends
on it ("is a slot free? take it") cannot race between workers. Times that must agree across
machines come from the server (``TIME``), never from a worker's own clock. Scripts are sent by
hash (``EVALSHA``); redis-py loads them again after a server restart has emptied its cache.

Numbers travel as strings: Redis turns a Lua number in a reply into an integer, which would cut
the fractional part of an adaptive limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from redis.commands.core import Script

__all__ = [
    "ACQUIRE",
    "CLAIM_TOKEN",
    "INVALIDATE_TOKEN",
    "RELEASE",
    "RENEW",
    "REPAIR",
    "STORE_TOKEN",
    "UNLOCK",
    "Scripts",
]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ACQUIRE = (
    _NOW
    + """
-- KEYS: 1 leases (zset id -> expiry ms), 2 queue (zset worker -> ticket),
--       3 seen (zset worker -> last poll ms), 4 ticket counter, 5 state (hash: adaptive limit)
-- ARGV: 1 worker, 2 slots wanted, 3 first lease number, 4 lease ms, 5 waiter ms,
--       6 fixed limit (0: adaptive), 7 initial, 8 min, 9 max, 10 queue if short ('1' / '0')
local worker = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- A worker that stopped polling (killed while waiting) must not keep its place at the head.
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]))
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local slots
local epoch = 0
local fixed = tonumber(ARGV[6])
if fixed > 0 then
  slots = fixed
else
  local state = redis.call('HMGET', KEYS[5], 'limit', 'epoch')
  local limit = tonumber(state[1])
  if limit then
    epoch = tonumber(state[2]) or 0
  else
    limit = tonumber(ARGV[7])
    redis.call('HSET', KEYS[5], 'limit', ARGV[7], 'ssthresh', ARGV[9], 'epoch', 0)
  end
  -- The learnt limit outlives the workers, but not forever: a day without traffic forgets it.
  redis.call('PEXPIRE', KEYS[5], 86400000)
  slots = math.max(tonumber(ARGV[8]), math.floor(limit))
end
local held = redis.call('ZCARD', KEYS[1])
local want = tonumber(ARGV[2])
local rank = redis.call('ZRANK', KEYS[2], worker)
-- Fairness: the workers queued ahead of this one are served first; a newcomer queues last.
local ahead = rank
if not ahead then
  ahead = redis.call('ZCARD', KEYS[2])
end
local grant = 0
local free = slots - held
if free > ahead then
  grant = math.min(want, free - ahead)
end
local first = tonumber(ARGV[3])
local expiry = now + tonumber(ARGV[4])
for i = 0, grant - 1 do
  redis.call('ZADD', KEYS[1], expiry, worker .. ':' .. tostring(first + i))
end
if grant > 0 then
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[4]))
end
if ARGV[10] ~= '1' then
  -- A try without waiting leaves the queue alone (the worker's other callers may be in it).
elseif grant < want then
  if grant > 0 or not rank then
    -- Served (or new): go to the back, so every other waiting worker gets a turn first.
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), worker)
  end
  redis.call('ZADD', KEYS[3], now, worker)
  for i = 2, 4 do
    redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[5]) + 60000)
  end
else
  redis.call('ZREM', KEYS[2], worker)
  redis.call('ZREM', KEYS[3], worker)
end
return {grant, epoch, slots, held + grant}
"""
)

RELEASE = (
    _NOW
    + """
-- KEYS: 1 leases, 2 state. ARGV: 1 lease, 2 outcome, 3 epoch of the grant, 4 fixed, 5 min, 6 max,
--       7 rounds before a probe after a refusal, 8 fewest rounds between steps up
-- As AdaptiveLimiter (asr_resilience/limits/_limiter.py), which explains each step. The outcome
-- 'started' (the call's task started, it goes on) teaches as a success and keeps the lease.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local removed
if ARGV[2] == 'started' then
  removed = redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
else
  removed = redis.call('ZREM', KEYS[1], ARGV[1])
end
if tonumber(ARGV[4]) > 0 then
  return {'0', '0'}
end
local state = redis.call('HMGET', KEYS[2], 'limit', 'ssthresh', 'epoch', 'credit', 'patience',
                         'works')
local limit = tonumber(state[1])
if not limit then
  return {'0', '0'}  -- the state is gone (server restarted): the next acquire starts it afresh
end
local ssthresh = tonumber(state[2]) or limit
local epoch = tonumber(state[3]) or 0
local credit = tonumber(state[4]) or 0
local patience = tonumber(state[5]) or tonumber(ARGV[7])
local works = tonumber(state[6]) or 0
local lowest = tonumber(ARGV[5])
local highest = tonumber(ARGV[6])
local old = limit
local slots = math.max(lowest, math.floor(limit))
-- Calls in flight before this one ended (an expired lease was in flight all the same).
local in_flight = held + 1 - removed
if ARGV[2] == 'success' or ARGV[2] == 'started' then
  if in_flight * 2 >= slots and limit < highest then
    if limit < ssthresh then
      limit = math.min(highest, limit + 1)  -- slow start: not refused yet
    else
      credit = credit + 1  -- successes since the limit last moved
      if credit >= slots and works < slots then
        works = slots  -- a whole round of successes at this many slots
      end
      if credit >= patience * slots then
        credit = 0
        patience = math.max(tonumber(ARGV[8]), patience / 2)
        limit = math.min(highest, math.floor(limit) + 1)
      end
    end
    redis.call('HSET', KEYS[2], 'limit', tostring(limit), 'credit', tostring(credit),
               'patience', tostring(patience), 'works', works)
  end
elseif ARGV[2] == 'throttled' then
  -- The quota is what was in flight when the refusal came back, the refused call not counted.
  local others = in_flight - 1
  if tonumber(ARGV[3]) == epoch then
    local new = math.min(others, slots - 1)
    if works < slots then
      new = math.max(new, works)  -- a refused probe: back to what a round ran at
    else
      works = 0  -- refused at a slot count that worked: the quota shrank
    end
    limit = math.max(lowest, new)
    redis.call('HSET', KEYS[2], 'limit', tostring(limit), 'ssthresh', tostring(limit),
               'epoch', epoch + 1, 'credit', '0', 'patience', ARGV[7], 'works', works)
  elseif others < slots and works < slots then
    -- Granted before the latest cut: part of the burst it answered, lowering only.
    limit = math.max(lowest, others, works)
    redis.call('HSET', KEYS[2], 'limit', tostring(limit), 'ssthresh', tostring(limit))
  end
end
return {tostring(old), tostring(limit)}
"""
)

RENEW = (
    _NOW
    + """
-- KEYS: 1 leases. ARGV: 1 lease ms, 2.. lease ids.
-- Upsert, not update: a lease lost while Redis was away (or restarted empty) is a call still in
-- flight at the vendor, and the fleet must count it again.
local expiry = now + tonumber(ARGV[1])
local lost = 0
for i = 2, #ARGV do
  lost = lost + redis.call('ZADD', KEYS[1], expiry, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return lost
"""
)

REPAIR = """
-- KEYS: the keys of one component. ARGV: the type each must have ('zset', 'string', 'hash').
-- Deletes only a key that exists with another type (someone wrote over it): the scripts
-- recreate it on next use. Reply: {key, type found, ...} for each key deleted.
local repaired = {}
for i, key in ipairs(KEYS) do
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= ARGV[i] then
    redis.call('DEL', key)
    table.insert(repaired, key)
    table.insert(repaired, found)
  end
end
return repaired
"""

CLAIM_TOKEN = """
-- KEYS: 1 token (hash: value, expires_at, issued_at), 2 refresh lock.
-- ARGV: 1 lock owner, 2 lock ms, 3 now (unix s), 4 refresh ahead (s), 5.. values that failed.
-- Reply: {1 if this caller now holds the lock, value, expires_at, issued_at, repaired}
-- ('' when none); repaired lists {key, what was found, ...} for each broken key replaced.
-- Both keys are ours alone (namespaced, written only by these scripts, the lock always with a
-- TTL). A token that is not a hash, or a lock that is not a string or has no TTL, was left by a
-- bug or by hand: kept, it would fail every claim (WRONGTYPE) or hold the lock forever.
local repaired = {}
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  redis.call('DEL', KEYS[1])
  table.insert(repaired, KEYS[1])
  table.insert(repaired, kind)
end
-- Compare-and-invalidate first: drop the shared token only if it is one that failed.
for i = 5, #ARGV do
  if redis.call('HGET', KEYS[1], 'value') == ARGV[i] then
    redis.call('DEL', KEYS[1])
  end
end
local entry = redis.call('HMGET', KEYS[1], 'value', 'expires_at', 'issued_at')
local value = entry[1]
local now = tonumber(ARGV[3])
local function finite(x)
  return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge
end
-- Validate what was read before anyone uses it: a token is 1..4096 visible ASCII characters
-- (what the clients send as a header), an expiry is absent (never) or a finite number. A value
-- written by hand or by another program is garbage: dropped and replaced, never handed out.
if value or entry[2] then
  local bad = not value or #value > 4096 or not string.find(value, '^[%w%p]+$')
  if entry[2] and entry[2] ~= '' and not finite(tonumber(entry[2])) then
    bad = true
  end
  if bad then
    redis.call('DEL', KEYS[1])
    table.insert(repaired, KEYS[1])
    table.insert(repaired, 'a hash that holds no valid token')
    value = false
  end
end
if value then
  local expires_at = tonumber(entry[2])
  if not expires_at then
    return {0, value, '', entry[3] or '', repaired}
  end
  local issued_at = tonumber(entry[3])
  if not finite(issued_at) then
    issued_at = expires_at
  end
  -- As TokenManager: renew refresh_ahead before expiry, but not before half the lifetime.
  local refresh_at = math.max(expires_at - tonumber(ARGV[4]),
                              issued_at + (expires_at - issued_at) / 2)
  if now < refresh_at then
    return {0, value, entry[2], entry[3] or '', repaired}
  end
  if now >= expires_at then
    value = false
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, '', '', '', repaired}
end
kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'string' or redis.call('PTTL', KEYS[2]) == -1 then
  -- A broken lock (see above): take it over, as if it had expired.
  table.insert(repaired, KEYS[2])
  table.insert(repaired, kind == 'string' and 'string without a TTL' or kind)
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {1, '', '', '', repaired}
end
if value then
  -- Due for renewal, but still valid, and another worker is renewing it: use it meanwhile.
  return {0, value, entry[2], entry[3] or '', repaired}
end
return {0, '', '', '', repaired}
"""

STORE_TOKEN = """
-- KEYS: 1 token, 2 refresh lock. ARGV: 1 value, 2 expires_at ('' never), 3 issued_at,
--       4 ms to live ('' never), 5 lock owner
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'issued_at', ARGV[3])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('DEL', KEYS[2])
end
return 1
"""

UNLOCK = """
-- KEYS: 1 lock. ARGV: 1 owner. Compare-and-delete: never free a lock that expired and was
-- taken by another worker meanwhile.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

INVALIDATE_TOKEN = """
-- KEYS: 1 token. ARGV: 1 the value that failed. Only that token is dropped.
if redis.call('HGET', KEYS[1], 'value') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts registered with one client (each call sends its SHA, not its text)."""

    acquire: Script
    release: Script
    renew: Script
    repair: Script
    claim_token: Script
    store_token: Script
    unlock: Script
    invalidate_token: Script

    @classmethod
    def register(cls, client: Any) -> Scripts:
        """Register every script with ``client``; nothing is sent until first use."""
        return cls(
            acquire=client.register_script(ACQUIRE),
            release=client.register_script(RELEASE),
            renew=client.register_script(RENEW),
            repair=client.register_script(REPAIR),
            claim_token=client.register_script(CLAIM_TOKEN),
            store_token=client.register_script(STORE_TOKEN),
            unlock=client.register_script(UNLOCK),
            invalidate_token=client.register_script(INVALIDATE_TOKEN),
        )

    def sources(self) -> dict[str, str]:
        """Each script's text by its SHA (a cluster pipeline sends the text, see _connection)."""
        scripts = [getattr(self, field.name) for field in fields(self)]
        return {script.sha: str(script.script) for script in scripts}
