-- Purge finished job records whose retention has passed: record, history,
-- events and every index entry. ARGV: prefix, now (epoch s), max count.
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local h = p .. 'job:' .. id
  local f = redis.call('HMGET', h, 'cluster', 'owner', 'name', 'status', 'tags')
  if f[1] then
    redis.call('ZREM', p .. 'idx:cluster:' .. f[1], id)
    redis.call('ZREM', p .. 'idx:owner:' .. f[2], id)
    redis.call('ZREM', p .. 'idx:name:' .. f[3], id)
    redis.call('ZREM', p .. 'idx:status:' .. f[4], id)
    for _, tag in ipairs(cjson.decode(f[5] or '[]')) do
      redis.call('ZREM', p .. 'idx:tag:' .. tag, id)
    end
  end
  redis.call('ZREM', p .. 'idx:all', id)
  redis.call('DEL', h, h .. ':history', h .. ':events')
  redis.call('ZREM', p .. 'expiry', id)
  redis.call('ZREM', p .. 'finalize', id)
end
return #ids
