-- End a polling chain whose lease KEYS[1] still holds ARGV[1] ("<token>:<seq>"),
-- if the cluster's active-job hash KEYS[2] is empty: both in one step, so a job
-- that becomes active meanwhile always finds either the chain or no lease.
-- Returns 1 if the chain ended.
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
