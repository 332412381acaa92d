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
	problems, err := check(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcheck:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "pick free ports, e.g.: make run EDGE_PORT=8081 ORIGIN_PORT=9001 ADMIN_PORT=2020")
		os.Exit(1)
	}
}

// check returns one line for each NAME=PORT argument whose port cannot be
// bound on 127.0.0.1 or is given to another name too.
func check(args []string) ([]string, error) {
	var problems []string
	seen := map[string]string{} // port -> name
	for _, arg := range args {
		name, port, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, fmt.Errorf("argument %q is not NAME=PORT", arg)
		}
		if other, dup := seen[port]; dup {
			problems = append(problems, fmt.Sprintf("port %s is given to both %s and %s", port, other, name))
			continue
		}
		seen[port] = name
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			problems = append(problems, fmt.Sprintf("port %s (%s) is busy on 127.0.0.1: %v", port, name, err))
			continue
		}
		l.Close()
	}
	return problems, nil
}
