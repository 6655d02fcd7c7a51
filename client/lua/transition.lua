-- Apply one observed status to a job, atomically.
-- A finished job never changes again; an observation older than the last one
-- applied is stale and ignored; the same status again only updates details.
-- An update may also require the job to be in one status still (`only_from`): a
-- submit recording PENDING must not move back a job a poll already saw RUNNING.
-- Key names come from keys.py as arguments; this script spells none.
-- Empty strings mean "not given". Returns {outcome, previous status}.
local job, history, events, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local status_prefix, active_prefix, finalize, expiry = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local id, new, observed_text, at = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local reason, exit_code, backend_id = ARGV[13], ARGV[14], ARGV[15]
local started_at, finished_at, elements, entry = ARGV[16], ARGV[17], ARGV[18], ARGV[19]
local retention, maxlen, only_from = tonumber(ARGV[20]), ARGV[21], ARGV[22]
-- The observation's digest, kept per active job in the cluster's "seen" hash: a poll
-- leaves an observation equal to the last one recorded unsent (it would change nothing).
local seen_prefix, digest = ARGV[23], ARGV[24]

local FINISHED = {SUCCEEDED = true, FAILED = true, CANCELLED = true}
local cur = redis.call('HGET', job, 'status')
if not cur then
  return {'missing', ''}
end
if FINISHED[cur] then
  if backend_id ~= '' and (redis.call('HGET', job, 'backend_id') or '') == '' then
    redis.call('HSET', job, 'backend_id', backend_id)
  end
  return {'finished', cur}
end
if only_from ~= '' and cur ~= only_from then
  return {'moved on', cur}
end
local observed = tonumber(observed_text)
if observed < tonumber(redis.call('HGET', job, 'observed_at') or '0') then
  return {'stale', cur}
end
redis.call('HSET', job, 'observed_at', observed_text)

local changed = false
local function set_if_given(field, value)
  if value ~= '' and redis.call('HGET', job, field) ~= value then
    redis.call('HSET', job, field, value)
    changed = true
  end
end
set_if_given('backend_id', backend_id)
set_if_given('started_at', started_at)
set_if_given('finished_at', finished_at)
set_if_given('elements', elements)

local cluster = redis.call('HGET', job, 'cluster')
if not FINISHED[new] then
  redis.call('HSET', seen_prefix .. cluster, id, digest)
end
local outcome
if cur ~= new then
  redis.call('HSET', job, 'status', new, 'reason', reason, 'exit_code', exit_code)
  redis.call('ZREM', status_prefix .. cur, id)
  redis.call('ZADD', status_prefix .. new, 0, id)
  redis.call('RPUSH', history, entry)
  outcome = 'applied'
else
  set_if_given('reason', reason)
  set_if_given('exit_code', exit_code)
  if not changed then
    return {'same', cur}
  end
  outcome = 'updated'
end
redis.call('HSET', job, 'updated_at', at)

if FINISHED[new] then
  redis.call('HDEL', active_prefix .. cluster, id)
  redis.call('HDEL', seen_prefix .. cluster, id)
  redis.call('ZADD', finalize, observed, id)
  redis.call('ZADD', expiry, observed + retention, id)
else
  local known = redis.call('HGET', job, 'backend_id') or ''
  if known ~= '' then
    redis.call('HSET', active_prefix .. cluster, id, known)
  end
end

local event = cjson.encode({
  kind = outcome == 'applied' and 'transition' or 'update',
  id = id, cluster = cluster, status = new, previous = cur, at = at,
  reason = reason, exit_code = exit_code,
})
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', event)
redis.call('PUBLISH', channel, event)
return {outcome, cur}
