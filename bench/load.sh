#!/usr/bin/env bash
# The loopback load script: measures, in one run on this machine,
#   1. hit throughput of http_cache against Caddy's own `respond` serving the
#      same 1 KiB body (target: >= 0.9x),
#   2. throughput of a site with geofilter against the same site without it
#      (target: >= 0.97x),
#   3. how many origin requests N concurrent misses on one key make (target: 1).
# Every server listens on 127.0.0.1 only; wrk runs a bounded time.
#
# Usage: bench/load.sh [seconds-per-run (default 5)] [rounds (default 3)]
# Needs: bin/caddy (built by `make build`), wrk and curl (installed with apt-get
# when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
conns=64

. bench/lib.sh
need wrk
need curl
make -s build example-assets >/dev/null

setup_work
go build -o "$work/origin" ./bench/origin
start_origin

body=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:18019
	auto_https off
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}
# Caddy's own respond: the baseline for both comparisons.
http://127.0.0.1:18001 {
	header Cache-Control "public, max-age=3600"
	respond "$body"
}
# http_cache in front of the origin; after one warm-up request every
# request is a hit.
http://127.0.0.1:18002 {
	http_cache
	reverse_proxy 127.0.0.1:18100
}
# The baseline site with geofilter in front of it.
http://127.0.0.1:18003 {
	geofilter {
		db $PWD/example/demo.mmdb
		deny country CN
		default allow
	}
	header Cache-Control "public, max-age=3600"
	respond "$body"
}
CADDY
./bin/caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:18001/ && curl -s -o /dev/null 127.0.0.1:18100/_count && break; sleep 0.2; done

# Warm the cache and show what a hit looks like.
curl -s -o /dev/null 127.0.0.1:18002/bench
echo "--- a hit:"
curl -s -D - -o /dev/null 127.0.0.1:18002/bench | tr -d '\r' | grep -iE '^(HTTP|cache-status|age|content-length)'

rps() { wrk -t2 -c$conns -d${secs}s -H 'X-Forwarded-For: 81.2.69.160' "$1" | awk '/Requests\/sec/ {print $2}'; }
declare -a base cache geo
for i in $(seq "$rounds"); do
	base+=("$(rps http://127.0.0.1:18001/bench)")
	cache+=("$(rps http://127.0.0.1:18002/bench)")
	geo+=("$(rps http://127.0.0.1:18003/bench)")
	echo "round $i: respond ${base[-1]} req/s, http_cache hit ${cache[-1]} req/s, respond+geofilter ${geo[-1]} req/s"
done
# Each round measures the three sites back to back, so a ratio taken within
# a round is less disturbed by whatever else the machine does; the reported
# ratio is the median of the per-round ratios.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratios() { local -n num=$1; for i in "${!num[@]}"; do awk -v n="${num[$i]}" -v d="${base[$i]}" 'BEGIN {printf "%.3f\n", n/d}'; done; }
b=$(median "${base[@]}"); c=$(median "${cache[@]}"); g=$(median "${geo[@]}")
hit_ratio=$(median $(ratios cache))
geo_ratio=$(median $(ratios geo))

# N concurrent misses on one key: the origin is slowed to 300 ms so that all
# of them arrive while the first is in flight.
n=64
key="/collapse-$RANDOM$RANDOM"
urls=()
for _ in $(seq $n); do urls+=(-o /dev/null "http://127.0.0.1:18002$key?delay=300ms"); done
curl -s --parallel --parallel-immediate --parallel-max $n "${urls[@]}" 2>/dev/null
origin_hits=$(curl -s "127.0.0.1:18100/_count?path=$key")

echo "--- results (medians of $rounds runs of ${secs}s, $conns connections, 1 KiB body)"
echo "respond:              $b req/s"
echo "http_cache hit:       $c req/s  median ratio to respond $hit_ratio (target >= 0.9)"
echo "respond + geofilter:  $g req/s  median ratio to respond $geo_ratio (target >= 0.97)"
echo "$n concurrent misses on one key -> $origin_hits origin request(s) (target 1)"
