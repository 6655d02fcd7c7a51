-- A drainer's next job: forget the claim of the job it finished (ARGV[1], or ''), take
-- the oldest queued job and claim it for ARGV[2] seconds, renewing the drainer's slot.
-- An empty queue frees the slot, so that the next job queued arms a drainer again.
-- Returns {job id or '', seconds until the first claim left lapses, or -1 if none}.
-- KEYS: queue, claims, this drainer's slot.
local queue, claims, slot = KEYS[1], KEYS[2], KEYS[3]
local done, claim_s, ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6

if done ~= '' then
  redis.call('ZREM', claims, done)
end
for _, job in ipairs(redis.call('ZRANGEBYSCORE', claims, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', claims, job)
  redis.call('ZADD', queue, 0, job)
end
local popped = redis.call('ZPOPMIN', queue)
if #popped > 0 then
  redis.call('ZADD', claims, now + claim_s, popped[1])
  redis.call('PEXPIRE', slot, ttl_ms)
  return {popped[1], '-1'}
end
redis.call('DEL', slot)
local first = redis.call('ZRANGE', claims, 0, 0, 'WITHSCORES')
if #first == 0 then
  return {'', '-1'}
end
return {'', tostring(math.max(0, tonumber(first[2]) - now))}
