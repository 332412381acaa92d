// Package redistest starts real redis-server processes (Debian's
// redis-server package) on free loopback ports for tests, each with its own
// temporary directory, and stops them when the test ends.
//
// Without redis-server on PATH a test is skipped on a developer machine and
// fails in CI (when the environment variable CI is "true"), so that CI can
// never pass by skipping the Redis tests.
package redistest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Need returns the path of the named program (redis-server, redis-cli),
// skipping or failing the test when it is missing.
func Need(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI must install it (apt-get install -y redis-server): %v", program, err)
	}
	t.Skipf("%s is not installed (apt-get install -y redis-server); skipping", program)
	return ""
}

// Server is a running redis-server.
type Server struct {
	Addr string // host:port on 127.0.0.1
	Port int
	dir  string
	args []string
	t    testing.TB
	cmd  *exec.Cmd
	tls  bool // the port speaks TLS only
}

// Start starts a redis-server with persistence off. extra are more
// "--option value" arguments.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, false, extra...)
}

// StartTLS starts a redis-server that speaks only TLS on its port, with
// the certificate and key in the PEM files given, and no client
// certificates required.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	return start(t, true, "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no")
}

func start(t testing.TB, tls bool, extra ...string) *Server {
	t.Helper()
	bin := Need(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir(), tls: tls}
	s.args = append([]string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}, extra...)
	var err error
	for range 20 {
		s.Port = freePort(t)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
		if err = s.start(bin); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", err)
	return nil
}

func (s *Server) start(bin string) error {
	args := append([]string{"--port", strconv.Itoa(s.Port)}, s.args...)
	if s.tls {
		args = append([]string{"--port", "0", "--tls-port", strconv.Itoa(s.Port)}, s.args...)
	}
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.Port)))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("redis-server exited: %v: %s", err, b)
		default:
		}
		if ping(s.Addr, s.tls) {
			s.cmd = cmd
			go func() { <-exited }()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

// Stop stops the server (as a crash would: no save). It is safe to call
// more than once.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	for range 200 {
		if c, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond); err != nil {
			break
		} else {
			c.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
}

// Restart starts a stopped server again on the same port (empty).
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("redistest: Restart of a running server")
	}
	var err error
	for range 50 { // the port may linger a moment
		if err = s.start(Need(s.t, "redis-server")); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restarting redis-server: %v", err)
}

// Cluster starts n redis-servers in cluster mode and joins them into one
// cluster with redis-cli --cluster create, with no replicas.
func Cluster(t testing.TB, n int) []*Server {
	t.Helper()
	cli := Need(t, "redis-cli")
	nodes := make([]*Server, n)
	addrs := make([]string, n)
	for i := range nodes {
		nodes[i] = Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		addrs[i] = nodes[i].Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Wait until every node sees the whole cluster as ok.
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range nodes {
		for {
			out, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s after 20s: %s", s.Addr, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nodes
}

// Do runs a redis-cli command against the server and returns its output.
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	cli := Need(s.t, "redis-cli")
	out, err := exec.Command(cli, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// ping reports whether a Redis answers PING at addr.
func ping(addr string, useTLS bool) bool {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	if useTLS {
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// freePort returns a loopback port that is free now, in 3000-9999, whose
// cluster bus port (+10000) is free too: both below the ephemeral range, so
// that no outgoing connection takes them meanwhile, and outside
// caddytest.FreePort's range.
func freePort(t testing.TB) int {
	t.Helper()
	port := 3000 + rand.IntN(7000)
	for range 1000 {
		if free(port) && free(port+10000) {
			return port
		}
		port = 3000 + (port-3000+7919)%7000
	}
	t.Fatal("redistest: no free port pair in 3000-9999")
	return 0
}

func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
