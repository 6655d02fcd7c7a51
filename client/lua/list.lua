-- Page through the job indexes (sorted sets of ids, all score 0, so lexical
-- order is creation order) without scanning the keyspace.
-- The driver is one index, or the merge of several (a status filter with more
-- than one status); each candidate must also be in every key of the AND list and
-- in at least one key of the OR list. At most `budget` candidates are examined per
-- call; the returned cursor lets the caller continue.
-- ARGV: 1 lower lex bound, 2 upper lex bound, 3 limit, 4 reverse ('1'/'0'), 5 budget,
--       6 n driver keys, driver keys..., n AND keys, AND keys..., n OR keys, OR keys...
-- Returns {state, last id examined, id, id, ...}: state 'more' when the budget ran
-- out before the range or the limit did (continue after the last id examined).
local lo, hi = ARGV[1], ARGV[2]
local limit, reverse, budget = tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local pos = 6
local function take_list()
  local n = tonumber(ARGV[pos])
  local list = {}
  for i = 1, n do list[i] = ARGV[pos + i] end
  pos = pos + n + 1
  return list
end
local drivers, all_of, any_of = take_list(), take_list(), take_list()

local CHUNK = 256
local buffers, starts, exhausted = {}, {}, {}
local function refill(i)
  local key = drivers[i]
  local got
  if reverse then
    got = redis.call('ZREVRANGEBYLEX', key, starts[i], lo, 'LIMIT', 0, CHUNK)
  else
    got = redis.call('ZRANGEBYLEX', key, starts[i], hi, 'LIMIT', 0, CHUNK)
  end
  buffers[i] = {items = got, at = 1}
  if #got < CHUNK then exhausted[i] = true end
  if #got > 0 then starts[i] = '(' .. got[#got] end
end
for i = 1, #drivers do
  starts[i] = reverse and hi or lo
  exhausted[i] = false
  refill(i)
end

local function next_candidate()
  local best, best_i
  for i = 1, #drivers do
    local b = buffers[i]
    if b.at > #b.items and not exhausted[i] then refill(i); b = buffers[i] end
    local item = b.items[b.at]
    if item and (best == nil or (reverse and item > best) or (not reverse and item < best)) then
      best, best_i = item, i
    end
  end
  if best_i then
    -- one id may sit in several drivers only if statuses overlap; skip equal heads too
    for i = 1, #drivers do
      local b = buffers[i]
      if b.items[b.at] == best then b.at = b.at + 1 end
    end
  end
  return best
end

local out = {'done', ''}
local examined = 0
while #out - 2 < limit do
  if examined >= budget then
    out[1] = 'more'
    break
  end
  local id = next_candidate()
  if not id then break end
  examined = examined + 1
  out[2] = id
  local ok = true
  for _, key in ipairs(all_of) do
    if not redis.call('ZSCORE', key, id) then ok = false; break end
  end
  if ok and #any_of > 0 then
    ok = false
    for _, key in ipairs(any_of) do
      if redis.call('ZSCORE', key, id) then ok = true; break end
    end
  end
  if ok then out[#out + 1] = id end
end
return out
