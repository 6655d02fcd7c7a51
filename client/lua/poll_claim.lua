-- Claim step ARGV[2] of polling chain ARGV[1]: the lease at KEYS[1] holds
-- "<token>:<seq>" of the step due next. A free lease (expired: its chain died) is
-- taken too. The lease moves to "<token>:<seq + 1>" for ARGV[3] ms. Returns 1 if
-- claimed; 0 tells a duplicate, a redelivery or another chain's message to stop.
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] .. ':' .. ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. (tonumber(ARGV[2]) + 1), 'PX', ARGV[3])
  return 1
end
return 0
