// Command caddy-bench is Caddy with the plugin and the bench-only ceiling
// handler (bench/ceiling), built by the load harness. It is the same Caddy
// that `make build` produces with xcaddy, plus one module that the plugin
// never registers.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-edge/edge"
	_ "github.com/caddy-edge/edge/bench/ceiling"
)

func main() {
	caddycmd.Main()
}
