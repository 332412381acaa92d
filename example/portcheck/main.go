// Command portcheck fails, naming the port, when one of the example's ports
// cannot be bound on 127.0.0.1, so that `make run` says so before a build of
// several minutes rather than after it.
//
//	go run ./example/portcheck EDGE_PORT=8080 ORIGIN_PORT=9000 ADMIN_PORT=2019
//
// It binds each port as Caddy will (127.0.0.1, TCP) and releases it at once;
// a port taken by a listener on 0.0.0.0 or [::] counts as taken too.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

func main() {
	busy := 0
	seen := map[string]string{} // port -> name
	for _, arg := range os.Args[1:] {
		name, port, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "portcheck: argument %q is not NAME=PORT\n", arg)
			os.Exit(2)
		}
		if other, dup := seen[port]; dup {
			fmt.Fprintf(os.Stderr, "port %s is given to both %s and %s\n", port, other, name)
			busy++
			continue
		}
		seen[port] = name
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			fmt.Fprintf(os.Stderr, "port %s (%s) is busy on 127.0.0.1: %v\n", port, name, err)
			busy++
			continue
		}
		l.Close()
	}
	if busy > 0 {
		fmt.Fprintln(os.Stderr, "pick free ports, e.g.: make run EDGE_PORT=8081 ORIGIN_PORT=9001 ADMIN_PORT=2020")
		os.Exit(1)
	}
}
