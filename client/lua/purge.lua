-- Purge finished job records whose retention has passed: record, history,
-- events and every index entry. Key names come from keys.py as arguments.
local job_prefix, history_suffix, events_suffix, secrets_suffix = ARGV[1], ARGV[2], ARGV[3], ARGV[14]
local index_all, expiry, finalize, index_prefix = ARGV[4], ARGV[5], ARGV[6], {
  cluster = ARGV[7], owner = ARGV[8], name = ARGV[9], status = ARGV[10], tag = ARGV[11],
}
local now, limit = ARGV[12], tonumber(ARGV[13])

local ids = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local job = job_prefix .. id
  local f = redis.call('HMGET', job, 'cluster', 'owner', 'name', 'status', 'tags')
  if f[1] then
    redis.call('ZREM', index_prefix.cluster .. f[1], id)
    redis.call('ZREM', index_prefix.owner .. f[2], id)
    redis.call('ZREM', index_prefix.name .. f[3], id)
    redis.call('ZREM', index_prefix.status .. f[4], id)
    for _, tag in ipairs(cjson.decode(f[5] or '[]')) do
      redis.call('ZREM', index_prefix.tag .. tag, id)
    end
  end
  redis.call('ZREM', index_all, id)
  redis.call('DEL', job, job .. history_suffix, job .. events_suffix, job .. secrets_suffix)
  redis.call('ZREM', expiry, id)
  redis.call('ZREM', finalize, id)
end
return #ids
