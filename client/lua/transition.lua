-- Apply one observed status to a job, atomically.
-- A finished job never changes again; an observation older than the last one
-- applied is stale and ignored; the same status again only updates details.
-- An update may also require the job to be in one status still (`only_from`): a
-- submit recording PENDING must not move back a job a poll already saw RUNNING.
-- ARGV: 1 prefix, 2 id, 3 status, 4 observed_at (epoch s), 5 at (ISO time),
--       6 reason, 7 exit code, 8 backend id, 9 started_at, 10 finished_at,
--       11 elements (JSON), 12 history entry (JSON), 13 retention s, 14 stream max length,
--       15 only_from status
-- Empty strings in 6-11 and 15 mean "not given". Returns {outcome, previous status}.
local FINISHED = {SUCCEEDED = true, FAILED = true, CANCELLED = true}
local p, id, new = ARGV[1], ARGV[2], ARGV[3]
local h = p .. 'job:' .. id
local cur = redis.call('HGET', h, 'status')
if not cur then
  return {'missing', ''}
end
local backend_id = ARGV[8]
if FINISHED[cur] then
  if backend_id ~= '' and (redis.call('HGET', h, 'backend_id') or '') == '' then
    redis.call('HSET', h, 'backend_id', backend_id)
  end
  return {'finished', cur}
end
if ARGV[15] ~= '' and cur ~= ARGV[15] then
  return {'moved on', cur}
end
local observed = tonumber(ARGV[4])
if observed < tonumber(redis.call('HGET', h, 'observed_at') or '0') then
  return {'stale', cur}
end
redis.call('HSET', h, 'observed_at', ARGV[4])

local changed = false
local function set_if_given(field, value)
  if value ~= '' and redis.call('HGET', h, field) ~= value then
    redis.call('HSET', h, field, value)
    changed = true
  end
end
set_if_given('backend_id', backend_id)
set_if_given('started_at', ARGV[9])
set_if_given('finished_at', ARGV[10])
set_if_given('elements', ARGV[11])

local cluster = redis.call('HGET', h, 'cluster')
local outcome
if cur ~= new then
  redis.call('HSET', h, 'status', new, 'reason', ARGV[6], 'exit_code', ARGV[7])
  redis.call('ZREM', p .. 'idx:status:' .. cur, id)
  redis.call('ZADD', p .. 'idx:status:' .. new, 0, id)
  redis.call('RPUSH', h .. ':history', ARGV[12])
  outcome = 'applied'
else
  set_if_given('reason', ARGV[6])
  set_if_given('exit_code', ARGV[7])
  if not changed then
    return {'same', cur}
  end
  outcome = 'updated'
end
redis.call('HSET', h, 'updated_at', ARGV[5])

if FINISHED[new] then
  redis.call('HDEL', p .. 'active:' .. cluster, id)
  redis.call('ZADD', p .. 'finalize', observed, id)
  redis.call('ZADD', p .. 'expiry', observed + tonumber(ARGV[13]), id)
else
  local known = redis.call('HGET', h, 'backend_id') or ''
  if known ~= '' then
    redis.call('HSET', p .. 'active:' .. cluster, id, known)
  end
end

local event = cjson.encode({
  kind = outcome == 'applied' and 'transition' or 'update',
  id = id, cluster = cluster, status = new, previous = cur, at = ARGV[5],
  reason = ARGV[6], exit_code = ARGV[7],
})
redis.call('XADD', h .. ':events', 'MAXLEN', '~', ARGV[14], '*', 'event', event)
redis.call('PUBLISH', p .. 'events', event)
return {outcome, cur}
