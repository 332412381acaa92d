# Shared by the loopback bench scripts (load.sh, memory.sh, gc.sh), which
# source it from the repository's root; it is not run on its own.

# need <command>: installs it with apt-get when missing and run as root.
need() { command -v "$1" >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; } || { echo "please install $1"; exit 1; }; }

# setup_work makes $work, a temporary directory, and $pids, processes to
# stop; both go when the script exits, with every background job still
# running (a Caddy a script started and had not stopped when it failed:
# cleanup would wait for it forever).
setup_work() {
	work=$(mktemp -d)
	pids=()
	trap cleanup EXIT
}
cleanup() { for p in "${pids[@]}" $(jobs -p); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }

# build_bench builds $work/caddy (Caddy with the plugin and the bench-only
# ceiling handler) and $work/origin.
build_bench() {
	go build -o "$work/caddy" ./bench/cmd/caddy-bench
	go build -o "$work/origin" ./bench/origin
}

# start_origin starts $work/origin on 127.0.0.1:18100.
start_origin() {
	"$work/origin" -addr 127.0.0.1:18100 2>"$work/origin.log" &
	pids+=($!)
}

# setup_bench does what gc.sh and memory.sh start with: wrk and curl, the
# work directory, the build, and the origin running.
setup_bench() {
	need wrk
	need curl
	setup_work
	build_bench
	start_origin
}
