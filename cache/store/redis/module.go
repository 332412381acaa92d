package redis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/redis/rueidis"

	"github.com/caddy-edge/edge/cache/store"
)

// DefaultAddress is the Redis a store without address uses.
const DefaultAddress = "127.0.0.1:6379"

// connectWait is how long Provision waits for a new Client's first
// connection.
const connectWait = time.Second

// DefaultPrefix is put before every key of a store that sets no prefix.
const DefaultPrefix = "edge:"

// pool holds the live Clients by their configuration, so that a reload
// with the same options keeps the connections (and a changed option makes
// a new Client).
var pool = caddy.NewUsagePool()

// pooled is a Client in the pool.
type pooled struct{ *Client }

// Destruct closes the Client when the last config that uses it is
// unloaded.
func (p pooled) Destruct() error {
	p.Close()
	return nil
}

// Store is the http.cache.stores.redis module: a store in a Redis, Valkey
// or Redis Cluster that several Caddy nodes can share. A response stored
// through one node is a hit on every node with the same address, db and
// prefix, and a purge through any node is gone on all.
//
// Bodies up to 256 KiB are stored with their metadata in one value; larger
// ones in 256 KiB chunks, read one at a time as the hit is sent. Every key
// expires with its entry (after its freshness and stale windows), so Redis
// frees the space itself; if the server evicts (maxmemory), an entry that
// lost a part is a miss, never a short body. A response with more than
// 1000 distinct tags (Cache-Tag, Surrogate-Key) is served but not stored.
//
// If Redis is down, slow or restarting, requests are served from the
// origin: no store operation waits longer than timeout, a failure keeps
// the store away from Redis for one second (reads miss, responses are not
// kept, purges fail), errors are counted and logged once per outage, and
// the store reconnects by itself.
type Store struct {
	// Address lists the Redis servers as host:port. One address: a
	// single server (or a node of a Cluster, which is detected); several:
	// nodes of a Redis Cluster. Placeholders such as {env.REDIS_ADDR}
	// are replaced. Default: ["127.0.0.1:6379"].
	Address []string `json:"address,omitempty"`

	// Username is the ACL user. Placeholders are replaced. Default: none
	// (the "default" user when a password is set).
	Username string `json:"username,omitempty"`

	// Password authenticates the connections. Write it as a placeholder,
	// such as {env.REDIS_PASSWORD}, to keep it out of the config. Default:
	// none.
	Password string `json:"password,omitempty"`

	// DB is the database number. A Redis Cluster has only database 0.
	// Default: 0.
	DB int `json:"db,omitempty"`

	// TLS, when set, connects with TLS, configured as reverse_proxy's
	// transport TLS (root_ca_pem_files, insecure_skip_verify, server_name,
	// client_certificate_file, ...). Default: no TLS.
	TLS *reverseproxy.TLSConfig `json:"tls,omitempty"`

	// Prefix is put before every key the store writes, so that several
	// caches (or other data) can share a Redis. It must not contain "{"
	// or "}", which Redis Cluster reads as a hash tag. Default: "edge:".
	Prefix string `json:"prefix,omitempty"`

	// MaxObjectSize is the largest body stored, in bytes; larger
	// responses are served but not stored. Default: 67108864 (64 MiB).
	MaxObjectSize int64 `json:"max_object_size,omitempty"`

	// Timeout bounds each store operation (one round trip, or one
	// pipeline of them); a request never waits longer on Redis. Default:
	// 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// backend is c: Store's store.Store methods are its own.
	backend
	c      *Client
	key    string // in pool
	loaded bool   // s.key holds a reference in pool, released by Cleanup
	name   string
}

// backend is the store.Store a module Store forwards its methods to,
// embedded under an unexported name so it adds no JSON field.
type backend = store.Store

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.cache.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision loads the shared Client of s's options, creating it (and
// starting to connect) if no loaded config has it yet. Provision does not
// wait for Redis: Caddy starts while Redis is down.
func (s *Store) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	addrs := s.Address
	if len(addrs) == 0 {
		addrs = []string{DefaultAddress}
	}
	co := rueidis.ClientOption{
		Username: repl.ReplaceKnown(s.Username, ""),
		Password: repl.ReplaceKnown(s.Password, ""),
		SelectDB: s.DB,
	}
	for _, a := range addrs {
		co.InitAddress = append(co.InitAddress, repl.ReplaceKnown(a, ""))
	}
	if s.TLS != nil {
		tc, err := s.TLS.MakeTLSClientConfig(ctx)
		if err != nil {
			return fmt.Errorf("redis store: tls: %w", err)
		}
		co.TLSConfig = tc
	}
	prefix := s.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	id := struct {
		Addr       []string
		User, Pass string
		DB         int
		TLS        json.RawMessage
		Prefix     string
		Max        int64
		Timeout    time.Duration
	}{co.InitAddress, co.Username, co.Password, s.DB, nil, prefix, s.MaxObjectSize, time.Duration(s.Timeout)}
	if s.TLS != nil {
		id.TLS, _ = json.Marshal(s.TLS)
	}
	k, err := json.Marshal(id)
	if err != nil {
		return err
	}
	s.key = string(k)
	s.name = "redis:" + strings.Join(co.InitAddress, ",") + "/" + strconv.Itoa(s.DB) + "/" + prefix
	logger := ctx.Logger()
	v, _, err := pool.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		c := NewClient(Options{
			Client:        co,
			Prefix:        prefix,
			Timeout:       time.Duration(s.Timeout),
			MaxObjectSize: s.MaxObjectSize,
			Logger:        logger,
		})
		// Give the first connection a moment, so that a node uses the
		// cache from its first request; a Redis that is down delays the
		// start by this second at most.
		c.WaitConnected(ctx, connectWait)
		return pooled{c}, nil
	})
	if err != nil {
		return err
	}
	s.c, s.loaded = v.(pooled).Client, true
	s.backend = s.c
	return nil
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	switch {
	case strings.ContainsAny(s.Prefix, "{}"):
		return fmt.Errorf("redis store: prefix %q must not contain '{' or '}'", s.Prefix)
	case s.DB < 0:
		return fmt.Errorf("redis store: db %d is negative", s.DB)
	case s.DB != 0 && len(s.Address) > 1:
		return fmt.Errorf("redis store: db %d with several addresses: a Redis Cluster has only db 0", s.DB)
	case s.MaxObjectSize < 0:
		return fmt.Errorf("redis store: max_object_size %d is negative", s.MaxObjectSize)
	case s.Timeout < 0:
		return fmt.Errorf("redis store: timeout %v is negative", time.Duration(s.Timeout))
	}
	return nil
}

// Cleanup releases the shared Client; the last config to release it
// closes the connections.
func (s *Store) Cleanup() error {
	if !s.loaded {
		return nil
	}
	s.loaded = false
	_, err := pool.Delete(s.key)
	return err
}

// Client returns the shared Client, for a memory tier in front.
func (s *Store) Client() *Client { return s.c }

// StoreName names the store in the admin API and metrics: "redis", the
// addresses, db and prefix.
func (s *Store) StoreName() string { return s.name }

// Interface guards
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ caddy.Validator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ store.Store        = (*Store)(nil)
	_ store.Namer        = (*Store)(nil)
	_ caddy.Destructor   = pooled{}
)

// Subscribe calls fn with the keys of entries that changed in Redis, for a
// memory tier in front (see Client.Subscribe).
func (s *Store) Subscribe(fn func(keys []string)) (unsubscribe func()) {
	return s.c.Subscribe(fn)
}
