package redis

import "github.com/redis/rueidis"

// evalCmd builds an EVAL of script. The scripts are short; sending their
// text each time keeps them working across a server restart (no NOSCRIPT).
func evalCmd(rc rueidis.Client, script string, keys, args []string) rueidis.Completed {
	return rc.B().Eval().Script(script).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// The Lua scripts touch only keys of one hash slot each (an entry's meta
// key, or the index keys), so they run unchanged on a Redis Cluster.

// scriptSetMeta makes an entry visible: it replaces the meta value
// (KEYS[1]) with ARGV[1], expiring in ARGV[2] milliseconds ("0": never),
// and returns the fixed prefix of the value it replaced (empty if none),
// so that the caller can retire the old body's chunks.
const scriptSetMeta = `
local old = redis.call('GETRANGE', KEYS[1], 0, 13)
if ARGV[2] == '0' then
	redis.call('SET', KEYS[1], ARGV[1])
else
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return old
`

// scriptDelMeta deletes a meta value (KEYS[1]) and returns its fixed
// prefix (empty if there was none).
const scriptDelMeta = `
local old = redis.call('GETRANGE', KEYS[1], 0, 13)
if old ~= '' then redis.call('DEL', KEYS[1]) end
return old
`

// scriptReplaceMeta replaces the meta value (KEYS[1]) with ARGV[2],
// expiring in ARGV[3] milliseconds ("0": never), only if its generation
// (bytes 2 to 9) is still ARGV[1]: an update never lands on a body that
// was replaced meanwhile. Returns 1 if it replaced, 0 if not.
const scriptReplaceMeta = `
if redis.call('GETRANGE', KEYS[1], 2, 9) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
	redis.call('SET', KEYS[1], ARGV[2])
else
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
`

// The index keys, all in one slot: KEYS[1] the keys in lexical order (a
// sorted set with score 0), KEYS[2] the keys by expiry (score: Unix
// milliseconds of the server's clock, +inf for never), KEYS[3] the body
// size of each key (a hash), KEYS[4] the sum of those sizes.

// scriptIndexAdd indexes key ARGV[1] with size ARGV[2] and time to live
// ARGV[3] milliseconds ("0": never).
const scriptIndexAdd = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
if ARGV[3] == '0' then
	redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
else
	redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
end
local old = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[4], tonumber(ARGV[2]) - tonumber(old or '0'))
return 1
`

// scriptIndexDel removes the keys in ARGV from the index.
const scriptIndexDel = `
for _, k in ipairs(ARGV) do
	redis.call('ZREM', KEYS[1], k)
	redis.call('ZREM', KEYS[2], k)
	local old = redis.call('HGET', KEYS[3], k)
	if old then
		redis.call('HDEL', KEYS[3], k)
		redis.call('DECRBY', KEYS[4], tonumber(old))
	end
end
return 1
`

// scriptSweep removes up to ARGV[1] expired keys from the index (their
// entries Redis has already expired) and returns how many it removed.
const scriptSweep = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ks = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, k in ipairs(ks) do
	redis.call('ZREM', KEYS[1], k)
	redis.call('ZREM', KEYS[2], k)
	local old = redis.call('HGET', KEYS[3], k)
	if old then
		redis.call('HDEL', KEYS[3], k)
		redis.call('DECRBY', KEYS[4], tonumber(old))
	end
end
return #ks
`
