-- Keep the lease KEYS[1] of a polling step under way for ARGV[2] ms more, if it still
-- holds ARGV[1] ("<token>:<next seq>"): a step slower than the lease (a scheduler
-- command hung until its timeout, then retried) is not taken for a dead chain.
-- Returns 1 if the lease was kept.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
