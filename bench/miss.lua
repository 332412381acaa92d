-- A wrk script that makes every URL new: <prefix><thread>/<n>?size=<size>,
-- with wrk ... -s bench/miss.lua <url> -- <size> <prefix>. The prefix must be
-- unique to the run: wrk's math.random is not seeded, so random paths would
-- repeat in the next run and make its requests hits.
local threads, counter = 0, 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args) size, prefix = args[1], args[2] end
function request()
	counter = counter + 1
	return wrk.format(nil, prefix .. id .. "/" .. counter .. "?size=" .. size)
end
