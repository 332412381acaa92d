package disk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const killChildEnv = "DISK_STORE_KILL_CHILD_DIR"

// bodyOf is the body stored under key i: its length and bytes tell i.
func bodyOf(i int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, 1000+(i*7919)%300_000)
}

// A process killed with SIGKILL while it writes entries (with fsync, as
// configured by default) leaves no entry that is served wrong: after
// reopening, every entry listed has exactly the body written under its
// key, and the temporary files are gone.
func TestKill9DuringWrites(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringWrites$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the child has committed some entries, then kill it in
	// the middle of its writes.
	sc := bufio.NewScanner(out)
	committed := 0
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && n >= 50 {
			committed = n
			break
		}
	}
	time.Sleep(30 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	if committed == 0 {
		t.Fatal("the child committed nothing before it was killed")
	}

	c := open(t, Config{Dir: dir})
	l, err := c.Entries(context.Background(), "", "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) < committed {
		t.Errorf("%d entries after the kill, want at least the %d committed before", len(l), committed)
	}
	for _, le := range l {
		i, err := strconv.Atoi(strings.TrimPrefix(le.Key, "k"))
		if err != nil {
			t.Fatalf("unexpected key %q", le.Key)
		}
		_, got, err := get(t, c, le.Key)
		if err != nil {
			t.Errorf("%s listed but not served: %v", le.Key, err)
			continue
		}
		if !bytes.Equal(got, bodyOf(i)) {
			t.Errorf("%s served %d bytes, not the %d written", le.Key, len(got), len(bodyOf(i)))
		}
	}
	if left, _ := os.ReadDir(c.tmpDir); len(left) != 0 {
		t.Errorf("%d temporary files after reopening", len(left))
	}
	t.Logf("%d entries committed before the kill was sent, %d after reopening", committed, len(l))
}

// killChild writes entries until killed, printing the count of commits.
func killChild(dir string) {
	c, err := Open(Config{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	<-c.Ready()
	for i := 0; ; i++ {
		w, err := c.Put(context.Background(), "k"+strconv.Itoa(i), entry(time.Now()))
		if err != nil {
			fmt.Println("put:", err)
			os.Exit(1)
		}
		b := bodyOf(i)
		for len(b) > 0 {
			n := min(len(b), 32<<10)
			w.Write(b[:n])
			b = b[n:]
		}
		if err := w.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(1)
		}
		fmt.Println(i + 1)
	}
}
