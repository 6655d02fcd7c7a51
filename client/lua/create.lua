-- Create a job record with its indexes, first history entry and event, atomically.
-- Key names come from keys.py as arguments; this script spells none.
-- Secret env values go to their own hash, never into the record.
local job, history, events, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local index_keys = {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]} -- all, cluster, owner, name, NEW
local tag_prefix, secrets_key = ARGV[10], ARGV[11]
local id, fields, tags, entry, event = ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16]
local maxlen, secrets = ARGV[17], ARGV[18]

if redis.call('EXISTS', job) == 1 then
  return 0
end
for k, v in pairs(cjson.decode(fields)) do
  redis.call('HSET', job, k, v)
end
redis.call('RPUSH', history, entry)
for k, v in pairs(cjson.decode(secrets)) do
  redis.call('HSET', secrets_key, k, v)
end
for _, key in ipairs(index_keys) do
  redis.call('ZADD', key, 0, id)
end
for _, tag in ipairs(cjson.decode(tags)) do
  redis.call('ZADD', tag_prefix .. tag, 0, id)
end
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event)
redis.call('PUBLISH', channel, event)
return 1
