#!/usr/bin/env bash
# What the memory store's GOGC governor gives a small site: one Caddy site
# with a memory store serving 1 KiB hits, and Caddy's fastest handler
# (bench_ceiling, with the fields a hit adds) beside it, measured with Caddy
# started under GOGC=100 (Go's default: the governor then leaves GOGC alone)
# and with nothing set (the governor raises GOGC while the heap is small), in
# alternating rounds, each with a fresh Caddy. It prints req/s, Caddy's RSS
# after the run and the GOGC in force, per round. Loopback only; wrk runs a
# bounded time.
#
# Usage: bench/gc.sh [seconds-per-run (default 5)] [rounds (default 3)]
# Environment: SIZE=<bytes> (default 1024), CONNS=<connections> (default 64).
# Needs: wrk and curl (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
size=${SIZE:-1024}
conns=${CONNS:-64}
. bench/lib.sh
setup_bench
cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:18019
	auto_https off
	persist_config off
}
http://127.0.0.1:18501 {
	bench_ceiling $size hit_fields
}
http://127.0.0.1:18502 {
	http_cache
	reverse_proxy 127.0.0.1:18100
}
CADDY
echo "round GOGC scenario req/s rss_mib gogc_in_force"
for r in $(seq "$rounds"); do
	for gogc in 100 governed; do
		if [ "$gogc" = 100 ]; then
			GOGC=100 "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
		else
			env -u GOGC -u GOMEMLIMIT "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
		fi
		cpid=$!
		for _ in $(seq 50); do curl -s -o /dev/null "127.0.0.1:18502/bench?size=$size" && break; sleep 0.2; done
		curl -s -o /dev/null "127.0.0.1:18502/bench?size=$size"
		for s in ceiling-hit hit-memory; do
			port=18501
			[ "$s" = hit-memory ] && port=18502
			rps=$(wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/bench?size=$size" | awk '/Requests\/sec/ {print $2}')
			rss=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$cpid/status")
			in_force=$(curl -s 127.0.0.1:18019/metrics | awk '/^go_gc_gogc_percent/ {printf "%.0f", $2}')
			echo "$r $gogc $s $rps $rss $in_force"
		done
		kill "$cpid"
		wait "$cpid" 2>/dev/null || true
	done
done
