package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestCheck: a port another process listens on (here on all interfaces, as
// `python3 -m http.server` does) is reported by its variable's name, a free
// one is not, and one port given to two variables is reported.
func TestCheck(t *testing.T) {
	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := fmt.Sprint(free.Addr().(*net.TCPAddr).Port)
	free.Close()

	problems, err := check([]string{"EDGE_PORT=" + busyPort, "ORIGIN_PORT=" + freePort, "ADMIN_PORT=" + freePort})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 ||
		!strings.HasPrefix(problems[0], "port "+busyPort+" (EDGE_PORT) is busy") ||
		problems[1] != "port "+freePort+" is given to both ORIGIN_PORT and ADMIN_PORT" {
		t.Errorf("problems: %q", problems)
	}
	if _, err := check([]string{"8080"}); err == nil {
		t.Error("an argument without NAME= was accepted")
	}
}
