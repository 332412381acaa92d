#!/usr/bin/env bash
# The comparison harness (`make bench-load`): whole requests through a real
# Caddy, nginx and Varnish on this machine, loopback only, every run bounded
# in time. It builds Caddy with the plugin and the bench-only ceiling handler
# (bench/ceiling: one Write of a prebuilt slice, nothing inside Caddy serves
# faster), starts nginx (proxy_cache) and Varnish (malloc storage) in front of
# the same Go origin (bench/origin), and runs wrk against every scenario in
# interleaved rounds: each round runs every scenario once per size and
# connection count, so a ratio is taken between figures of the same round,
# and the median over rounds is reported.
#
# Scenarios (each its own site on 127.0.0.1; a store scenario runs only when
# its module is built in, and redis only when redis-server is installed):
#   ceiling      bench_ceiling: the prebuilt body in one Write
#   ceiling-hit  bench_ceiling with the three fields a hit adds (Date, Age,
#                Cache-Status), prebuilt: a hit against it shows the
#                cache's own cost apart from net/http's for those fields
#   respond      Caddy's respond with the same body
#   proxy        reverse_proxy to the origin, no cache
#   proxy-new    reverse_proxy, no cache, every URL new: the same wrk script
#                as miss, so that a stored miss is compared with a proxy
#                whose client does the same work (wrk's Lua request()
#                costs CPU on the machine both share)
#   hit-memory   http_cache (memory store) + reverse_proxy, every request a hit
#   hit-disk     http_cache (disk store)
#   hit-redis    http_cache (redis store, a redis-server started here)
#   hit-tiered   http_cache (memory tier in front of disk)
#   geo-hit      geofilter (demo database, a GB client) + http_cache hits
#   zipf-hot     http_cache hits on one key of a store filled with
#                ZIPF_KEYS entries (default 100000; fewer where they would
#                hold more than 256 MiB of bodies), the path chosen by a
#                wrk script (the same script as zipf, drawing from one key)
#   zipf         the same store, each path drawn from a Zipf distribution
#                (s = 1.1) over all its keys: a large store against one
#                hot key (zipf / zipf-hot)
#   miss         http_cache, every URL new: fetched and stored
#   pass         http_cache, the origin says no-store: fetched, not stored
#   nginx        nginx proxy_cache hits
#   varnish      Varnish hits
#   nginx-proxy-new  nginx proxy_pass without a cache, every URL new
#   nginx-miss   nginx proxy_cache, every URL new: fetched and stored (in
#                files, as nginx stores)
#   varnish-pass Varnish, every URL new, passed (return (pass)): fetched,
#                not stored (Varnish still holds a passed body in its
#                transient storage while it sends it)
#   varnish-miss Varnish, every URL new: fetched and stored (malloc)
# The last four show what storing a miss costs the servers users compare
# us with: the column "x fetch" divides a stored miss by the same server
# fetching without storing (miss by proxy-new, nginx-miss by
# nginx-proxy-new, varnish-miss by varnish-pass).
# and, at the end, how many origin requests 1000 concurrent requests for one
# missing key make.
#
# It prints, per size and connection count: req/s, p99 latency, server CPU
# per request (user+system time of the serving process tree during the run,
# divided by the requests; the origin's CPU is not counted), the server's RSS
# after the run, and req/s as a ratio to the ceiling and to nginx of the
# same round (and to ceiling-hit, proxy and proxy-new, the ceilings of hits
# and of misses; a stored miss is measured against proxy-new, whose client
# runs the same script; and, as "x fetch", each server's stored miss
# against its own fetch without storing).
#
# Usage: bench/harness.sh [seconds-per-run (5)] [rounds (3)]
# Environment: SIZES="1024 16384 262144" CONNS="64 256" SCENARIOS="..." to
# run a subset (names as above); PROFILE=<dir> also saves a CPU profile of
# Caddy (from its admin API's /debug/pprof) for every Caddy run, as
# <dir>/<scenario>-<size>-<conns>-r<round>.pprof, to compare with
# `go tool pprof -top -diff_base <dir>/ceiling-... <dir>/hit-memory-...`
# (profiling costs the server a few per cent while it runs); RESULTS=<file>
# keeps every run's figures ("round scenario size conns req/s p99 cpu rss faults", the last
# the server's minor page faults a request);
# PIN=1 runs the servers (Caddy, nginx, Varnish, Redis) on CPU 0 and the
# clients (wrk) and the origin on CPU 1 (taskset), so that they do not take
# each other's time slices: Go sets Caddy's GOMAXPROCS to 1 then, nginx's
# two workers share the one CPU, and the ratios compare servers on one core
# each (on a 2-core machine, the spreads between rounds shrink).
# Needs: wrk, nginx, varnishd, curl (installed with apt-get when missing and
# run as root); redis-server for hit-redis (optional).
set -euo pipefail
cd "$(dirname "$0")/.."
srv=() cli=()
if [ "${PIN:-}" = 1 ]; then
	srv=(taskset -c 0) cli=(taskset -c 1)
fi
secs=${1:-5}
rounds=${2:-3}
sizes=(${SIZES:-1024 16384 262144})
conns_list=(${CONNS:-64 256})
all_scenarios="ceiling ceiling-hit respond proxy proxy-new hit-memory hit-disk hit-redis hit-tiered geo-hit zipf-hot zipf miss pass nginx varnish nginx-proxy-new nginx-miss varnish-pass varnish-miss"
scenarios=(${SCENARIOS:-$all_scenarios})

need() { # need <command> [debian-package]
	command -v "$1" >/dev/null && return
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null; }
	fi
	command -v "$1" >/dev/null || { echo "please install ${2:-$1}"; exit 1; }
}
need wrk
need curl
need nginx nginx-light
need varnishd varnish
make -s example-assets >/dev/null

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work" "${nginx_misses:-}"
}
trap cleanup EXIT

echo "--- building caddy-bench (Caddy + plugin + bench_ceiling) and the origin"
go build -o "$work/caddy" ./bench/cmd/caddy-bench
go build -o "$work/origin" ./bench/origin
modules=$("$work/caddy" list-modules)
has_module() { grep -qx "$1" <<<"$modules"; }

origin=127.0.0.1:18100
"${cli[@]}" "$work/origin" -addr $origin 2>"$work/origin.log" &
pids+=($!)

# Ports: scenario i, size j -> 18200 + 10*i + j.
port_of() { # port_of <scenario> <size>
	local i=0 j=0 s want=${1/#zipf-hot/zipf}
	for s in $all_scenarios; do [ "$s" = "$want" ] && break; i=$((i + 1)); done
	for s in "${sizes[@]}"; do [ "$s" = "$2" ] && break; j=$((j + 1)); done
	echo $((18200 + 10 * i + j))
}

zipf_keys=${ZIPF_KEYS:-100000}
zipf_keys_of() { # zipf_keys_of <size>: ZIPF_KEYS, at most 256 MiB of bodies
	local most=$(((256 << 20) / $1))
	echo $((zipf_keys < most ? zipf_keys : most))
}
redis_port=18190
if printf '%s\n' "${scenarios[@]}" | grep -qx hit-redis; then
	if command -v redis-server >/dev/null && has_module http.cache.stores.redis; then
		"${srv[@]}" redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
		pids+=($!)
	else
		scenarios=($(printf '%s\n' "${scenarios[@]}" | grep -vx hit-redis))
		echo "(hit-redis skipped: needs redis-server and the redis store module)"
	fi
fi
for s in hit-disk hit-tiered; do
	mod=http.cache.stores.${s#hit-}
	if ! has_module "$mod"; then
		scenarios=($(printf '%s\n' "${scenarios[@]}" | grep -vx "$s"))
		echo "($s skipped: $mod is not built in)"
	fi
done

# --- Caddy: one site per scenario and size.
{
	cat <<CADDY
{
	admin 127.0.0.1:18019
	auto_https off
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}
# Every Caddy site reaches the origin as nginx does: nginx keeps up to 64
# idle origin connections in each of its two workers (keepalive 64), Caddy
# 32 a reverse_proxy by default. With 256 connections and that default,
# most origin requests dialled a new connection: reverse_proxy took 325 us
# of Caddy's CPU a request instead of 289 with this pool (README,
# Production notes). proxy, proxy-new, miss and pass all get it.
(to_origin) {
	reverse_proxy $origin {
		transport http {
			keepalive_idle_conns_per_host 128
		}
	}
}
CADDY
	for size in "${sizes[@]}"; do
		body=$(head -c "$size" /dev/zero | tr '\0' 'x')
		cat <<CADDY
http://127.0.0.1:$(port_of ceiling "$size") {
	bench_ceiling $size
}
http://127.0.0.1:$(port_of ceiling-hit "$size") {
	bench_ceiling $size hit_fields
}
http://127.0.0.1:$(port_of respond "$size") {
	header Cache-Control "public, max-age=3600"
	respond "$body"
}
http://127.0.0.1:$(port_of proxy "$size") {
	import to_origin
}
http://127.0.0.1:$(port_of proxy-new "$size") {
	import to_origin
}
http://127.0.0.1:$(port_of hit-memory "$size") {
	http_cache
	import to_origin
}
http://127.0.0.1:$(port_of geo-hit "$size") {
	geofilter {
		db $PWD/example/demo.mmdb
		deny country CN
		default allow
	}
	http_cache
	import to_origin
}
# The Zipf scenarios have a store of their own, large enough for all
# their keys.
http://127.0.0.1:$(port_of zipf "$size") {
	http_cache {
		store memory {
			name zipf$size
			max_size $((($(zipf_keys_of "$size") * (size + 2400) * 17 / 16 + (64 << 20)) >> 20))MiB
		}
	}
	import to_origin
}
# Misses fill a store of their own, so that they never evict the entries
# the hit scenarios serve.
http://127.0.0.1:$(port_of miss "$size") {
	http_cache {
		store memory {
			name misses
		}
	}
	import to_origin
}
http://127.0.0.1:$(port_of pass "$size") {
	http_cache {
		store memory {
			name misses
		}
	}
	import to_origin
}
CADDY
		if has_module http.cache.stores.disk; then
			cat <<CADDY
http://127.0.0.1:$(port_of hit-disk "$size") {
	http_cache {
		store disk {
			path $work/disk-$size
		}
	}
	import to_origin
}
CADDY
		fi
		if has_module http.cache.stores.tiered && has_module http.cache.stores.disk; then
			cat <<CADDY
http://127.0.0.1:$(port_of hit-tiered "$size") {
	http_cache {
		store tiered {
			memory {
				max_size 64MiB
			}
			disk {
				path $work/tiered-$size
			}
		}
	}
	import to_origin
}
CADDY
		fi
		if printf '%s\n' "${scenarios[@]}" | grep -qx hit-redis; then
			cat <<CADDY
http://127.0.0.1:$(port_of hit-redis "$size") {
	http_cache {
		store redis {
			address 127.0.0.1:$redis_port
			prefix bench$size:
		}
	}
	import to_origin
}
CADDY
		fi
	done
} >"$work/Caddyfile"
"${srv[@]}" "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=($caddy_pid)

# --- nginx proxy_cache, on one port per size (all proxy to the origin).
nginx_misses="$work/nginx-misses"
[ -d /dev/shm ] && [ -w /dev/shm ] && nginx_misses=$(mktemp -d /dev/shm/edge-nginx-misses.XXXXXX)
mkdir -p "$work/nginx-cache" "$nginx_misses" "$work/nginx-tmp"
{
	cat <<NGINX
user root;
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx-tmp/body;
	proxy_temp_path $work/nginx-tmp/proxy;
	fastcgi_temp_path $work/nginx-tmp/fastcgi;
	uwsgi_temp_path $work/nginx-tmp/uwsgi;
	scgi_temp_path $work/nginx-tmp/scgi;
	proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=edge:16m max_size=1g inactive=1h use_temp_path=off;
	# Misses fill a cache of their own, as large as the memory store and
	# Varnish's storage, so that they never evict the hits' entries. It is
	# in memory (tmpfs), as the others store: on this machine's disk, the
	# kernel's writeback of earlier runs' files slowed nginx's stored misses
	# two- to fivefold from one run to the next.
	proxy_cache_path $nginx_misses levels=1:2 keys_zone=misses:16m max_size=256m inactive=1h use_temp_path=off;
	upstream origin { server $origin; keepalive 64; }
NGINX
	# nginx_server <scenario> <size> [zone]: a proxy to the origin, caching
	# in zone when one is given.
	nginx_server() {
		cat <<NGINX
	server {
		listen 127.0.0.1:$(port_of "$1" "$2");
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";${3:+
			proxy_cache $3;}
		}
	}
NGINX
	}
	for size in "${sizes[@]}"; do
		nginx_server nginx "$size" edge
		nginx_server nginx-miss "$size" misses
		nginx_server nginx-proxy-new "$size"
	done
	echo "}"
} >"$work/nginx.conf"
"${srv[@]}" nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" 2>>"$work/nginx-error.log" &
pids+=($!)

# --- Varnish: malloc storage, one listener per size, the origin as backend.
# Paths under /varnish-pass/ (the prefix bench/miss.lua gives that
# scenario's URLs) are passed: fetched, not stored.
cat >"$work/varnish.vcl" <<VCL
vcl 4.1;
backend origin { .host = "${origin%:*}"; .port = "${origin#*:}"; }
sub vcl_recv { if (req.url ~ "^/varnish-pass/") { return (pass); } }
VCL
# The misses have an instance of their own, so that they never evict the
# hits' objects.
varnish_args=() varnish_miss_args=()
for size in "${sizes[@]}"; do
	varnish_args+=(-a "127.0.0.1:$(port_of varnish "$size")")
	for s in varnish-pass varnish-miss; do varnish_miss_args+=(-a "127.0.0.1:$(port_of $s "$size")"); done
done
"${srv[@]}" varnishd -F -j none -n "$work/varnish" "${varnish_args[@]}" -f "$work/varnish.vcl" -s malloc,256m >"$work/varnish.log" 2>&1 &
varnish_pid=$!
pids+=($varnish_pid)
"${srv[@]}" varnishd -F -j none -n "$work/varnish-misses" "${varnish_miss_args[@]}" -f "$work/varnish.vcl" -s malloc,256m >"$work/varnish-misses.log" 2>&1 &
varnish_miss_pid=$!
pids+=($varnish_miss_pid)

# Wait for every listener.
for _ in $(seq 100); do
	ok=1
	for size in "${sizes[@]}"; do
		for s in ceiling nginx varnish varnish-miss; do
			curl -s -o /dev/null "http://127.0.0.1:$(port_of $s "$size")/" || ok=0
		done
	done
	[ $ok = 1 ] && break
	sleep 0.2
done
[ $ok = 1 ] || { echo "servers did not start"; tail -5 "$work"/*.log; exit 1; }

path_of() { # path_of <scenario> <size> [run-id]: the URL path wrk asks for
	case $1 in
	pass) echo "/pass/$3?size=$2&cc=no-store" ;;
	zipf | zipf-hot) echo "/z/1?size=$2" ;;
	*) echo "/bench?size=$2" ;;
	esac
}
# Warm the caches: after these requests every hit scenario is a hit.
for size in "${sizes[@]}"; do
	for s in "${scenarios[@]}"; do
		case $s in *miss | *proxy-new | *pass | zipf | zipf-hot) continue ;; esac
		for _ in 1 2 3; do curl -s -o /dev/null -H 'X-Forwarded-For: 81.2.69.160' "http://127.0.0.1:$(port_of "$s" "$size")$(path_of "$s" "$size")"; done
	done
	echo "--- $size B: what a hit looks like"
	curl -s -D - -o /dev/null "http://127.0.0.1:$(port_of hit-memory "$size")$(path_of hit-memory "$size")" | tr -d '\r' | grep -iE '^(cache-status|age|content-length)' | tr '\n' ' '
	echo
done

# The processes whose CPU a scenario costs, and their RSS.
tree_of() { # tree_of <scenario>
	case $1 in
	nginx*) cat "$work/nginx.pid"; pgrep -P "$(cat "$work/nginx.pid")" || true ;;
	varnish) echo "$varnish_pid"; pgrep -P "$varnish_pid" || true ;;
	varnish-*) echo "$varnish_miss_pid"; pgrep -P "$varnish_miss_pid" || true ;;
	*) echo "$caddy_pid" ;;
	esac
}
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
minflt() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $10}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
rss_kb() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $t; }
hz=$(getconf CLK_TCK)

# The Zipf scenarios: a script that draws each path from a Zipf
# distribution (s = 1.1) over /z/1 ... /z/<keys> (or, with "hot", makes the
# same draw and asks for /z/1, so that wrk spends the same on both), and one
# that fills the store with every key, from the key its third argument
# names on.
cat >"$work/zipf.lua" <<'LUA'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args)
	size, n, hot = args[1], tonumber(args[2]), args[3] == "hot"
	math.randomseed(id * 7919 + os.time())
	cdf = {}
	local total = 0
	for k = 1, n do total = total + 1 / k ^ 1.1; cdf[k] = total end
	for k = 1, n do cdf[k] = cdf[k] / total end
end
function request()
	local u, lo, hi = math.random(), 1, n
	while lo < hi do
		local mid = math.floor((lo + hi) / 2)
		if cdf[mid] < u then lo = mid + 1 else hi = mid end
	end
	if hot then lo = 1 end
	return wrk.format(nil, "/z/" .. lo .. "?size=" .. size)
end
LUA
cat >"$work/zipf-fill.lua" <<'LUA'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args) size, n, start = args[1], tonumber(args[2]), tonumber(args[3]); k = start + id - 2 end
function request()
	k = k + 2
	if k > n then k = id end
	return wrk.format(nil, "/z/" .. k .. "?size=" .. size)
end
LUA
if printf '%s\n' "${scenarios[@]}" | grep -qE '^zipf'; then
	for size in "${sizes[@]}"; do
		entries() { curl -s 127.0.0.1:18019/http_cache/stats | tr -d ' \n' | grep -oE "\"name\":\"memory/zipf$size\",\"entries\":[0-9]+" | grep -oE '[0-9]+$' || echo 0; }
		for _ in $(seq 30); do
			[ "$(entries)" -ge "$(zipf_keys_of "$size")" ] && break
			# Each run starts where the store's count says the last one
			# stopped, not at the first key again.
			wrk -t2 -c64 -d5s -s "$work/zipf-fill.lua" "http://127.0.0.1:$(port_of zipf "$size")/" -- "$size" "$(zipf_keys_of "$size")" "$(entries)" >/dev/null
		done
		echo "--- $size B: the Zipf store holds $(entries) entries ($(zipf_keys_of "$size") keys)"
	done
fi

results="$work/results"
: >"$results"
run() { # run <round> <scenario> <size> <conns>
	local s=$2 size=$3 c=$4 url out pids_ before after reqs prefix="/$2/r$1-$3-$4-"
	url="http://127.0.0.1:$(port_of "$s" "$size")$(path_of "$s" "$size" "${prefix#/pass/}")"
	pids_=$(tree_of "$s")
	prof=
	if [ -n "${PROFILE:-}" ] && [ "$pids_" = "$caddy_pid" ]; then
		mkdir -p "$PROFILE"
		curl -s -o "$PROFILE/$s-$size-$c-r$1.pprof" "http://127.0.0.1:18019/debug/pprof/profile?seconds=$((secs > 1 ? secs - 1 : 1))" &
		prof=$!
	fi
	before=$(cpu_ticks $pids_) faults_before=$(minflt $pids_)
	if [[ $s == *miss || $s == *proxy-new || $s == varnish-pass ]]; then
		out=$("${cli[@]}" wrk -t2 -c"$c" -d"${secs}s" --latency -s bench/miss.lua "$url" -- "$size" "$prefix")
	elif [ "$s" = zipf ] || [ "$s" = zipf-hot ]; then
		out=$("${cli[@]}" wrk -t2 -c"$c" -d"${secs}s" --latency -s "$work/zipf.lua" "$url" -- "$size" "$(zipf_keys_of "$size")" "${s#zipf-}")
	else
		out=$("${cli[@]}" wrk -t2 -c"$c" -d"${secs}s" --latency -H 'X-Forwarded-For: 81.2.69.160' "$url")
	fi
	after=$(cpu_ticks $pids_) faults=$(($(minflt $pids_) - faults_before))
	[ -z "$prof" ] || wait "$prof"
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	case $s in *miss | *proxy-new | *pass) # did every request reach the origin?
		echo "$s $size $c $reqs $(curl -s "$origin/_count?prefix=$prefix")" >>"$work/origin-counts" ;;
	esac
	awk -v r="$1" -v s="$s" -v size="$size" -v c="$c" -v hz="$hz" -v ticks=$((after - before)) -v reqs="$reqs" -v rss="$(rss_kb $pids_)" -v faults="$faults" '
		/Requests\/sec/ {rps = $2}
		/^ +99%/ {p99 = $2; if (p99 ~ /us$/) p99 = p99 / 1000; else if (p99 ~ /ms$/) p99 = p99 + 0; else if (p99 ~ /s$/) p99 = p99 * 1000}
		/Non-2xx|Socket errors/ {err = err " " $0}
		END {
			cpu = reqs > 0 ? ticks / hz / reqs * 1e6 : 0
			flt = reqs > 0 ? faults / reqs : 0
			printf "%s %s %s %s %.0f %.2f %.1f %.0f %.3f\n", r, s, size, c, rps, p99, cpu, rss / 1024, flt
			if (err != "") print "# round " r " " s " " size " " c ":" err > "/dev/stderr"
		}' <<<"$out" >>"$results"
}

echo "--- $rounds interleaved rounds of ${secs}s runs (wrk -t2), sizes ${sizes[*]}, connections ${conns_list[*]}"
for r in $(seq "$rounds"); do
	for size in "${sizes[@]}"; do
		for c in "${conns_list[@]}"; do
			for s in "${scenarios[@]}"; do run "$r" "$s" "$size" "$c"; done
		done
	done
	echo "round $r done"
done

[ -z "${RESULTS:-}" ] || cp "$results" "$RESULTS"
# Report: medians over rounds; ratios per round, then their median.
echo
echo "--- results: medians of $rounds rounds (req/s; its spread over the rounds, (max - min) / median; p99 ms; server CPU us/request; server RSS MiB after the run; server minor page faults a request)"
awk -v scen="${scenarios[*]}" '
	function spread(list,   n, a, i, lo, hi) { # (max - min) / median, in per cent
		n = split(list, a, " "); lo = hi = a[1] + 0
		for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
		return median(list) > 0 ? (hi - lo) / median(list) * 100 : 0
	}
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n ? a[int((n + 1) / 2)] : 0
	}
	{
		k = $3 " " $4
		rps[$2 " " k] = rps[$2 " " k] " " $5; p99[$2 " " k] = p99[$2 " " k] " " $6
		cpu[$2 " " k] = cpu[$2 " " k] " " $7; rss[$2 " " k] = rss[$2 " " k] " " $8; flt[$2 " " k] = flt[$2 " " k] " " $9
		round[$1 " " $2 " " k] = $5
		if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
		if ($1 > nr) nr = $1
	}
	END {
		# A stored miss against the same server fetching without storing.
		fetchOf["miss"] = "proxy-new"; fetchOf["nginx-miss"] = "nginx-proxy-new"; fetchOf["varnish-miss"] = "varnish-pass"
		ns = split(scen, S, " ")
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, kk, " ")
			printf "\n%s B, %s connections\n", kk[1], kk[2]
			printf "%-16s %10s %7s %9s %9s %8s %7s %10s %11s %9s %10s %9s %8s\n", "scenario", "req/s", "spread", "p99 ms", "cpu us", "RSS MiB", "faults", "x ceiling", "x ceil-hit", "x proxy", "x prx-new", "x nginx", "x fetch"
			for (j = 1; j <= ns; j++) {
				s = S[j]; if (!((s " " k) in rps)) continue
				rc = ""; rh = ""; rp = ""; rq = ""; rn = ""; rf = ""
				for (r = 1; r <= nr; r++) {
					v = round[r " " s " " k]; c = round[r " ceiling " k]; h = round[r " ceiling-hit " k]; p = round[r " proxy " k]; q = round[r " proxy-new " k]; n = round[r " nginx " k]
					if (c > 0) rc = rc " " v / c
					if (h > 0) rh = rh " " v / h
					if (p > 0) rp = rp " " v / p
					if (q > 0) rq = rq " " v / q
					if (n > 0) rn = rn " " v / n
					f = (s in fetchOf) ? round[r " " fetchOf[s] " " k] : 0
					if (f > 0) rf = rf " " v / f
				}
				printf "%-16s %10.0f %6.0f%% %9.2f %9.1f %8.0f %7.3f %10s %11s %9s %10s %9s %8s\n", s, median(rps[s " " k]), spread(rps[s " " k]), median(p99[s " " k]), median(cpu[s " " k]), median(rss[s " " k]), median(flt[s " " k]),
					rc == "" ? "-" : sprintf("%.3f", median(rc)), rh == "" ? "-" : sprintf("%.3f", median(rh)),
					rp == "" ? "-" : sprintf("%.3f", median(rp)), rq == "" ? "-" : sprintf("%.3f", median(rq)),
					rn == "" ? "-" : sprintf("%.3f", median(rn)), rf == "" ? "-" : sprintf("%.3f", median(rf))
			}
		}
	}' "$results"
# 1000 concurrent requests for one missing key, the origin slowed to 500 ms
# so that all of them arrive while the first is in flight: how many reach
# the origin (target 1)?
key="/collapse-$RANDOM$RANDOM"
wrk -t2 -c1000 -d2s "http://127.0.0.1:$(port_of hit-memory "${sizes[0]}")$key?size=${sizes[0]}&delay=500ms" >/dev/null 2>&1 || true
# A miss or pass-through that did not reach the origin would flatter it.
if [ -s "$work/origin-counts" ]; then
	echo
	awk '{n[$1] += $4; o[$1] += $5} END {for (s in n) printf "%s: %d client requests, %d origin requests (%.3f per request; 1 expected)\n", s, n[s], o[s], n[s] ? o[s] / n[s] : 0}' "$work/origin-counts"
fi
echo
echo "1000 concurrent requests for one missing key -> $(curl -s "$origin/_count?path=$key") origin request(s) (target 1)"

# Errors Caddy logged other than clients (wrk) closing connections at the end of a run.
grep -iE '"level":"error"|panic' "$work/caddy.log" | grep -vE 'broken pipe|connection reset by peer|context canceled' | head -5 || true
