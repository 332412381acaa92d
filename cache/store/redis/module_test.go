package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-edge/edge/internal/redistest"
)

func provision(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPoolLifecycle: configs with the same options share one Client (a
// reload keeps the connection), changed options make a new one, and the
// last Cleanup closes it.
func TestPoolLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	old := &Store{Address: []string{srv.Addr}, Prefix: "life:"}
	provision(t, old)
	if !old.c.Connected() {
		t.Error("Provision returned before the first connection to a running redis")
	}
	same := &Store{Address: []string{srv.Addr}, Prefix: "life:"}
	provision(t, same)
	if same.c != old.c {
		t.Error("a reload with the same options got a new Client")
	}
	changed := &Store{Address: []string{srv.Addr}, Prefix: "life2:"}
	provision(t, changed)
	if changed.c == old.c {
		t.Error("a changed prefix kept the old Client")
	}

	old.Cleanup() // the old config unloads: same still uses the Client
	if old.c.ctx.Err() != nil {
		t.Fatal("the Client was closed while a config still uses it")
	}
	same.Cleanup()
	if same.c.ctx.Err() == nil {
		t.Error("the last Cleanup left the Client open")
	}
	changed.Cleanup()
	if changed.c.ctx.Err() == nil {
		t.Error("the last Cleanup left the changed Client open")
	}
	if n := len(poolKeys()); n != 0 {
		t.Errorf("%d Clients left in the pool", n)
	}
}

func poolKeys() []any {
	var ks []any
	pool.Range(func(k, _ any) bool { ks = append(ks, k); return true })
	return ks
}

// TestTLS connects to a redis-server that speaks only TLS: with the CA
// given, with verification off, and (failing) without TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCerts(t, dir)
	srv := redistest.StartTLS(t, certFile, keyFile)
	for _, tc := range []struct {
		name string
		tls  *reverseproxy.TLSConfig
		ok   bool
	}{
		{"ca", &reverseproxy.TLSConfig{CARaw: json.RawMessage(`{"provider":"file","pem_files":["` + caFile + `"]}`)}, true},
		{"insecure_skip_verify", &reverseproxy.TLSConfig{InsecureSkipVerify: true}, true},
		{"no tls", nil, false},
		{"wrong ca", &reverseproxy.TLSConfig{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "wrong ca" {
				other, _, _ := writeCerts(t, t.TempDir())
				tc.tls.CARaw = json.RawMessage(`{"provider":"file","pem_files":["` + other + `"]}`)
			}
			s := &Store{Address: []string{srv.Addr}, Prefix: "tls-" + tc.name + ":", TLS: tc.tls, Timeout: caddy.Duration(2 * time.Second)}
			provision(t, s)
			t.Cleanup(func() { s.Cleanup() })
			if !tc.ok {
				if s.c.Connected() {
					t.Fatal("connected")
				}
				return
			}
			if !s.c.WaitConnected(context.Background(), 5*time.Second) {
				t.Fatal("no connection over TLS within 5s")
			}
			put(t, s, "k", entry(time.Hour), []byte("over tls"))
			_, b, err := s.Get(context.Background(), "k")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(b); string(got) != "over tls" {
				t.Errorf("body %q", got)
			}
		})
	}
}

// writeCerts writes a CA and a certificate for 127.0.0.1 that it signed,
// as PEM files in dir.
func writeCerts(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, _ := x509.ParseCertificate(caDER)
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
