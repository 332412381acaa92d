package cache

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache/policy"
)

// Issue 8 item 4 (parameter cloaking): a "&"-separated part is dropped
// only when every ";"-separated piece names an ignored parameter, because
// origins that split on ";" see the other pieces.
func TestIgnoredParamsCloaking(t *testing.T) {
	k := newKeyer("", false, []string{"utm_*"}, nil)
	for _, tt := range []struct{ query, want string }{
		{"utm_x=1;callback=evil", "http://h/?utm_x=1;callback=evil"},
		{"utm_x=1%3Bcallback=evil", "http://h/"}, // an encoded ";" is the value, split after decoding by nobody
		{"callback=evil;utm_x=1", "http://h/?callback=evil;utm_x=1"},
		{"utm_x=1;utm_y=2", "http://h/"},
		{"utm_x=1;;", "http://h/"},
		{"utm_x;callback", "http://h/?utm_x;callback"},
		{"a=1&utm_x=1;b=2&utm_y=3", "http://h/?a=1&utm_x=1;b=2"},
		{";", "http://h/?;"}, // nothing ignored in it: kept as sent
	} {
		if got := k.defaultKey("http", "h", "/", tt.query); got != tt.want {
			t.Errorf("query %q: key %q, want %q", tt.query, got, tt.want)
		}
	}
	// The cloaked request and the plain one never share a key.
	if a, b := k.defaultKey("http", "h", "/", "utm_x=1;callback=evil"), k.defaultKey("http", "h", "/", ""); a == b {
		t.Errorf("cloaked and plain request share key %q", a)
	}
}

// templateKeyOf expands template for a request to target with header
// fields (name, value pairs), with Caddy's request placeholders.
func templateKeyOf(t *testing.T, template, target string, fields ...string) string {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatal(err)
	}
	r := (&http.Request{Method: http.MethodGet, URL: u, Host: "example.com", Header: http.Header{}, RequestURI: target}).WithContext(context.Background())
	for i := 0; i+1 < len(fields); i += 2 {
		r.Header.Add(fields[i], fields[i+1])
	}
	caddyhttp.NewTestReplacer(r)
	k := newKeyer(template, false, nil, nil)
	return k.key(r)
}

// Issue 8 item 3: a decoded placeholder never puts a control byte (the
// variant separator NUL above all) into the key, and a value cannot reach
// into the next part of the key.
func TestTemplateKeyEscaping(t *testing.T) {
	const tmpl = "{http.request.host}{http.request.uri.path}#{http.request.header.X-A}"
	for _, tt := range []struct {
		target string
		fields []string
		want   string
	}{
		{"/a/b", nil, "example.com/a/b#"},
		{"/a%00b", nil, "example.com/a%2500b#"},                   // the path as sent, "%" escaped: no NUL
		{"/a%2500b", nil, "example.com/a%252500b#"},               // a literal "%00" in the decoded path: another key
		{"/a%0Ab", nil, "example.com/a%250Ab#"},                   // newline
		{"/a%23x", []string{"X-A", "y"}, "example.com/a%2523x#y"}, // "#" in the path cannot end it early
		{"/a", []string{"X-A", "x#y"}, "example.com/a#x#y"},       // the last value runs to the end
	} {
		got := templateKeyOf(t, tmpl, tt.target, tt.fields...)
		if got != tt.want {
			t.Errorf("%s %v: key %q, want %q", tt.target, tt.fields, got, tt.want)
		}
		if strings.ContainsAny(got, "\x00\n") {
			t.Errorf("%s: control byte in key %q", tt.target, got)
		}
	}
	// The attack: the NUL-bearing path forged the variant key of
	// /a for a request varying on a field.
	forged := templateKeyOf(t, "{http.request.uri.path}", "/a%00accept-language=en")
	if strings.Contains(forged, varySep) || forged == "/a"+varySep+"accept-language=en" {
		t.Errorf("path with %%00 made key %q", forged)
	}
	if a, b := templateKeyOf(t, tmpl, "/a%23x", "X-A", "y"), templateKeyOf(t, tmpl, "/a", "X-A", "x#y"); a == b {
		t.Errorf("two requests share key %q", a)
	}
}

func TestParseTemplate(t *testing.T) {
	for _, tt := range []struct {
		tmpl string
		want []segment
	}{
		{"{a}", []segment{{ph: "a"}}},
		{"x{a}#{b}", []segment{{lit: "x"}, {ph: "a", term: '#'}, {lit: "#"}, {ph: "b"}}},
		{"{a}{b}", []segment{{ph: "a", term: '/'}, {ph: "b", adj: true}}},
		{`\{a\}{b`, []segment{{lit: "{a}{b"}}},
		{"", nil},
	} {
		got := parseTemplate(tt.tmpl)
		if len(got) != len(tt.want) {
			t.Errorf("%q: %+v, want %+v", tt.tmpl, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%q: segment %d %+v, want %+v", tt.tmpl, i, got[i], tt.want[i])
			}
		}
	}
}

// FuzzKeyUnambiguous searches for two different requests with one store
// key: the same template (adjacent placeholders, a literal, a trailing
// one) over two sets of placeholder values, plus a variant part from a
// Vary'd field. Equal store keys must mean equal values. Seeds in
// testdata/fuzz/FuzzKeyUnambiguous.
func FuzzKeyUnambiguous(f *testing.F) {
	f.Add("example.com", "/a", "x", "en", "example.com", "/a\x00accept-language=en", "", "")
	f.Add("h", "/a#b", "c", "", "h", "/a", "b#c", "")
	f.Add("h/", "x", "", "", "h", "/x", "", "")
	f.Add("h", "", "%/x", "", "h%", "/x", "", "")
	f.Fuzz(func(t *testing.T, h1, p1, x1, l1, h2, p2, x2, l2 string) {
		k := newKeyer("{h}{p}#{x}", false, nil, nil)
		storeKey := func(h, p, x, lang string) string {
			repl := caddy.NewEmptyReplacer()
			repl.Set("h", h)
			repl.Set("p", p)
			repl.Set("x", x)
			pk := k.templateKey(repl)
			if strings.Contains(pk, varySep) {
				t.Fatalf("primary key %q holds the variant separator", pk)
			}
			return pk + varySep + variantKeyForTest([]string{"Accept-Language"}, http.Header{"Accept-Language": {lang}})
		}
		a, b := storeKey(h1, p1, x1, l1), storeKey(h2, p2, x2, l2)
		if a == b && (h1 != h2 || p1 != p2 || x1 != x2 || variantKeyForTest([]string{"Accept-Language"}, http.Header{"Accept-Language": {l1}}) != variantKeyForTest([]string{"Accept-Language"}, http.Header{"Accept-Language": {l2}})) {
			t.Fatalf("two requests share key %q: (%q %q %q %q) and (%q %q %q %q)", a, h1, p1, x1, l1, h2, p2, x2, l2)
		}
	})
}

func variantKeyForTest(vary []string, h http.Header) string {
	k, _ := policy.VaryKey(vary, h)
	return k
}

// Issue 11 item 8: the vary placeholders' values are built into the
// variant key unambiguously.
func TestVariantKeyPlaceholders(t *testing.T) {
	k := newKeyer("", false, nil, []string{"{a}", "{b}"})
	key := func(a, b string) string {
		repl := caddy.NewEmptyReplacer()
		repl.Set("a", a)
		repl.Set("b", b)
		s, ok := k.variantKey([]string{"X-F"}, http.Header{"X-F": {"v"}}, repl)
		if !ok {
			t.Fatal("not ok")
		}
		return s
	}
	if got, want := key("US", "mobile"), "x-f=v&{a}=US&{b}=mobile"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if a, b := key("1&{b}=2", ""), key("1", "2"); a == b {
		t.Errorf("two requests share variant key %q", a)
	}
	if got := key("\x00", "%"); strings.ContainsAny(got, "\x00") || got != "x-f=v&{a}=%00&{b}=%25" {
		t.Errorf("key %q", got)
	}
}

// A purge or an invalidation by URL finds the key that a request to that
// URL was stored under, for the default key and for templates, over HTTPS
// as over HTTP: a template with {http.request.scheme} must not build
// "http" for an https URL, or every purge of an HTTPS site misses.
func TestKeyForURLMatchesRequestKey(t *testing.T) {
	for _, template := range []string{
		"",
		"{http.request.scheme}://{http.request.host}{http.request.uri}",
		"{http.request.scheme}|{http.request.hostport}{http.request.uri.path}",
		"{http.request.host}{http.request.uri}",
		"{http.request.host}{http.request.orig_uri.path}?{http.request.orig_uri.query}",
		"{http.request.tls.server_name}{http.request.uri}",
		"{http.request.local.port}{http.request.uri}",
	} {
		for _, target := range []string{"https://example.com/a?b=1", "http://example.com/a", "https://example.com:8443/x%2Fy"} {
			u, err := url.Parse(target)
			if err != nil {
				t.Fatal(err)
			}
			r := httptestRequest(t, u)
			k := newKeyer(template, false, nil, nil)
			if got, want := k.keyForURL(u), k.key(r); got != want {
				t.Errorf("template %q, %s: purge key %q, request key %q", template, target, got, want)
			}
		}
	}
}

// httptestRequest is a GET of u as a Caddy server listening on u's port
// receives it: the request target in origin form, TLS set for https, the
// original request and the local address in the context, Caddy's
// placeholders.
func httptestRequest(t *testing.T, u *url.URL) *http.Request {
	t.Helper()
	ru, err := url.ParseRequestURI(u.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: http.MethodGet, URL: ru, Host: u.Host, Header: http.Header{}, RequestURI: u.RequestURI()}
	port := map[string]int{"http": 80, "https": 443}[u.Scheme]
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = p
	}
	if u.Scheme == "https" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: u.Hostname()}
	}
	ctx := context.WithValue(context.Background(), caddyhttp.OriginalRequestCtxKey, *r)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, net.Addr(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: port}))
	r = r.WithContext(ctx)
	caddyhttp.NewTestReplacer(r)
	return r
}
