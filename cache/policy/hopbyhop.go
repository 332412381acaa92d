package policy

import (
	"net/http"
	"net/textproto"
)

// StripHopByHop removes the hop-by-hop fields of h (RFC 9110 §7.6.1: those
// listed in Connection, and Connection, Keep-Alive, Proxy-Connection, TE,
// Transfer-Encoding, Upgrade) and those §3.1 says a cache must not store
// (Proxy-Authenticate etc.), in place.
func StripHopByHop(h http.Header) {
	hop := HopByHop(h["Connection"])
	for k := range h {
		if hop(k) {
			delete(h, k)
		}
	}
}

// HopByHop returns the test of whether a canonical field name is
// hop-by-hop or one a cache must not store (see StripHopByHop) in a
// header whose Connection field has the values connection. The names
// Connection lists are parsed once, into a set: a header of many fields
// with a long Connection field costs their sum, not their product.
func HopByHop(connection []string) func(name string) bool {
	if len(connection) == 0 {
		return isHopByHop
	}
	listed := make(map[string]bool)
	for _, line := range connection {
		for line != "" {
			var f string
			f, line = nextListElement(line)
			if f != "" {
				listed[textproto.CanonicalMIMEHeaderKey(f)] = true
			}
		}
	}
	return func(name string) bool { return isHopByHop(name) || listed[name] }
}

// hopByHop lists, in canonical form, the fields a cache neither stores nor
// forwards: RFC 9110 §7.6.1 (Connection, Proxy-Connection, Keep-Alive, TE,
// Transfer-Encoding, Upgrade; Trailer is only meaningful with chunked
// framing) and RFC 9111 §3.1 (Proxy-Authenticate,
// Proxy-Authentication-Info, Proxy-Authorization).
var hopByHop = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Proxy-Authenticate",
	"Proxy-Authentication-Info",
	"Proxy-Authorization",
}

// isHopByHop tells whether the canonical field k is in hopByHop.
func isHopByHop(k string) bool {
	for _, f := range hopByHop {
		if k == f {
			return true
		}
	}
	return false
}
