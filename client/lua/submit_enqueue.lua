-- Queue a recorded job for submission (ARGV[1]; '' only re-arms) and arm a drainer if
-- one is wanted: slot 1 when it is free, each further slot once the queue holds more
-- jobs than the slots before it take. Claims that lapsed (their drainer died) are
-- queued again first. Returns the slot whose drain message the caller must send, or 0.
-- KEYS: queue, claims, then the drainer slots in order.
local queue, claims = KEYS[1], KEYS[2]
local id, ttl_ms, per_drainer = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6

for _, job in ipairs(redis.call('ZRANGEBYSCORE', claims, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', claims, job)
  redis.call('ZADD', queue, 0, job)
end
if id ~= '' then
  redis.call('ZADD', queue, 'NX', now, id)
end
local waiting = redis.call('ZCARD', queue)
if waiting == 0 then
  return 0
end
for slot = 1, #KEYS - 2 do
  if redis.call('SET', KEYS[slot + 2], '1', 'NX', 'PX', ttl_ms) then
    return slot
  end
  if waiting <= slot * per_drainer then
    return 0
  end
end
return 0
