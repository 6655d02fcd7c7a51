-- Create a job record with its indexes, first history entry and event, atomically.
-- ARGV: prefix, job id, fields (JSON object of strings), cluster, owner, name,
--       tags (JSON list), history entry (JSON), event (JSON), stream max length
local p, id = ARGV[1], ARGV[2]
local h = p .. 'job:' .. id
if redis.call('EXISTS', h) == 1 then
  return 0
end
for k, v in pairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', h, k, v)
end
redis.call('RPUSH', h .. ':history', ARGV[8])
redis.call('ZADD', p .. 'idx:all', 0, id)
redis.call('ZADD', p .. 'idx:cluster:' .. ARGV[4], 0, id)
redis.call('ZADD', p .. 'idx:owner:' .. ARGV[5], 0, id)
redis.call('ZADD', p .. 'idx:name:' .. ARGV[6], 0, id)
redis.call('ZADD', p .. 'idx:status:NEW', 0, id)
for _, tag in ipairs(cjson.decode(ARGV[7])) do
  redis.call('ZADD', p .. 'idx:tag:' .. tag, 0, id)
end
redis.call('XADD', h .. ':events', 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[9])
redis.call('PUBLISH', p .. 'events', ARGV[9])
return 1
