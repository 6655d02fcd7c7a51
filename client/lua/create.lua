-- Create a job record with its indexes, first history entry and event, atomically.
-- Key names come from keys.py as arguments; this script spells none.
-- Secret env values go to their own hash, never into the record.
local job, history, events, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local index_keys = {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]} -- all, cluster, owner, name, NEW
local tag_prefix, secrets_key = ARGV[10], ARGV[11]
local id, entry, event = ARGV[12], ARGV[15], ARGV[16]
local maxlen = ARGV[17]
-- Decode everything before the first write: a script that fails part way leaves its
-- writes behind (Redis has no rollback), and a half-written record has no index entry.
local fields, tags, secrets = cjson.decode(ARGV[13]), cjson.decode(ARGV[14]), cjson.decode(ARGV[18])

if redis.call('EXISTS', job) == 1 then
  return 0
end
for k, v in pairs(fields) do
  redis.call('HSET', job, k, v)
end
redis.call('RPUSH', history, entry)
for k, v in pairs(secrets) do
  redis.call('HSET', secrets_key, k, v)
end
for _, key in ipairs(index_keys) do
  redis.call('ZADD', key, 0, id)
end
for _, tag in ipairs(tags) do
  redis.call('ZADD', tag_prefix .. tag, 0, id)
end
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event)
redis.call('PUBLISH', channel, event)
return 1
