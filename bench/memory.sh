#!/usr/bin/env bash
# Does a full memory store keep its budget? Fills http_cache's memory store
# with 1 KiB responses (BODY_SIZE bytes when set; every URL new, through a real Caddy and the Go
# origin, loopback only) until it has been evicting for a while, then
# reports Caddy's RSS against max_size and the target
# RSS <= 1.25 x max_size + 64 MiB, with Caddy's RSS before the fill and, after
# it, how much of the RSS is anonymous memory (heap, stacks) and how much the
# binary's file pages (clean, shared with the page cache, reclaimable: with
# a kernel that maps the page cache in large folios, nearly all of the
# binary's read-only data is resident from the start). Then it sends one 1 GiB response through
# the cache (larger than max_object_size, so streamed and not stored) and
# reports how far Caddy's peak RSS rose above its RSS before (target: less
# than 64 MiB).
#
# What the bound costs: for the misses sent after the fill (the store full
# and evicting), it also reports the stored misses a second, Caddy's CPU
# time a miss and the collector's cycles.
#
# Usage: bench/memory.sh [max sizes in MiB (default "64 256")] [fill seconds (default 60)]
# Environment: BODY_SIZE=<bytes> fills with bodies of that size (default
# 1024); 32 KiB and more exercises the recycling of large bodies' buffers.
# ENVS="governed" skips the runs with GOMEMLIMIT=off (default: both).
# Needs: wrk and curl (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=(${1:-64 256})
fill=${2:-60}
body=${BODY_SIZE:-1024}

. bench/lib.sh
setup_bench

rss_mib() { awk -v f="${2:-VmRSS}" '$1 == f":" {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
gc_cycles() { curl -s 127.0.0.1:18019/metrics | awk '/^go_gc_duration_seconds_count/ {print $2}'; }
stats() { curl -s 127.0.0.1:18019/http_cache/stats | tr -d ' \n' | grep -oE '"entries":[0-9]+,"bytes":[0-9]+' | head -1; }

echo "size_mib entries counted_bytes rss_idle_mib rss_after_fill_mib rss_after_churn_mib (anon file) target_mib env | churn: misses/s cpu_us/miss gc_cycles"
envs=("" "GOMEMLIMIT=off")
[[ ${ENVS:-} == governed ]] && envs=("")
hz=$(getconf CLK_TCK)
for env in "${envs[@]}"; do
	for mib in "${sizes[@]}"; do
		cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:18019
	auto_https off
	persist_config off
}
http://127.0.0.1:18002 {
	http_cache {
		store memory {
			max_size ${mib}MiB
		}
	}
	reverse_proxy 127.0.0.1:18100
}
CADDY
		env $env "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
		cpid=$!
		for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:18002/up && break; sleep 0.2; done
		idle=$(rss_mib $cpid)
		wrk -t2 -c64 -d"${fill}s" -s bench/miss.lua http://127.0.0.1:18002/ -- "$body" "/fill/$mib$env/" >/dev/null
		a=$(rss_mib $cpid)
		t0=$(cpu_ticks $cpid) g0=$(gc_cycles)
		n=$(wrk -t2 -c64 -d"$((fill / 2))s" -s bench/miss.lua http://127.0.0.1:18002/ -- "$body" "/churn/$mib$env/" | awk '/requests in/ {print $1}')
		t1=$(cpu_ticks $cpid) g1=$(gc_cycles)
		b=$(rss_mib $cpid)
		anon=$(rss_mib $cpid RssAnon) file=$(rss_mib $cpid RssFile)
		s=$(stats)
		echo "$mib $(sed -E 's/"entries":([0-9]+),"bytes":([0-9]+)/\1 \2/' <<<"$s") $idle $a $b ($anon $file) $((mib * 5 / 4 + 64)) ${env:-governed} | $((n / (fill / 2))) $(((t1 - t0) * 1000000 / hz / n)) $((g1 - g0))"
		kill $cpid; wait $cpid 2>/dev/null || true
	done
done

# One 1 GiB response through a fresh Caddy: the peak RSS (VmHWM) against the
# RSS before the request.
cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:18019
	auto_https off
	persist_config off
}
http://127.0.0.1:18002 {
	http_cache
	reverse_proxy 127.0.0.1:18100
}
CADDY
"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
cpid=$!
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:18002/up && break; sleep 0.2; done
curl -s -o /dev/null 127.0.0.1:18002/warm
before=$(rss_mib $cpid)
got=$(curl -s -o /dev/null -D "$work/headers" -w '%{size_download}' "127.0.0.1:18002/big?size=1073741824")
peak=$(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$cpid/status")
echo "1 GiB through the cache: downloaded $got bytes, RSS before ${before} MiB, peak ${peak} MiB, rise $((peak - before)) MiB (target < 64)"
echo "  $(tr -d '\r' <"$work/headers" | grep -i '^cache-status')"
kill $cpid; wait $cpid 2>/dev/null || true
