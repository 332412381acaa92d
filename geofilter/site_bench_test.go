package geofilter_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// BenchmarkSite measures whole requests through a real Caddy over loopback
// (keep-alive, one client), alternating between a route without and a route
// with a geofilter (three databases, five rules, the address allowed by
// default), so that both see the same machine load. It reports the median
// time of each and their ratio; the target is a throughput with the filter
// of at least 0.97x the throughput without, i.e. with/without <= 1.03.
// A third route with a trivial handler (vars) in place of the filter gives
// noop/without, the cost of any extra handler in a route.
// Caddy's own metrics are off: with them, Caddy times every handler, which
// any extra handler pays, whatever it does.
func BenchmarkSite(b *testing.B) {
	country := mmdbtest.Country(b, countryNets)
	asn := mmdbtest.ASN(b, map[string]mmdbtest.ASNRecord{"192.0.2.0/24": {Number: 64496, Org: "Example"}})
	// The tor rule needs an anonymous-IP database (a rule no database can
	// answer is refused); the client's address is not in it.
	anon := mmdbtest.Anonymous(b, map[string]mmdbtest.AnonymousRecord{"198.51.100.0/24": {IsAnonymous: true, IsTorExitNode: true}})
	s := caddytest.Start(b, strings.Replace(globalTrusted, "\tmetrics\n", "", 1)+`
:{HTTP_PORT} {
	handle /with {
		geofilter {
			db `+country+`
			db `+asn+`
			db `+anon+`
			allow ip 10.0.0.0/8
			deny country CN RU KP IR
			deny asn 64511 64512
			log continent AF
			deny tor
		}
		respond "hello {geo.country_code}"
	}
	handle /without {
		respond "hello DE"
	}
	handle /noop {
		vars noop 1
		respond "hello DE"
	}
}
`)
	newReq := func(path string) *http.Request {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", s.HTTPPort, path), nil)
		req.Header.Set("X-Forwarded-For", ipDE)
		return req
	}
	do := func(req *http.Request) time.Duration {
		start := time.Now()
		resp, err := s.Client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 || string(body) != "hello DE" {
			b.Fatalf("%s: %d %q", req.URL.Path, resp.StatusCode, body)
		}
		return d
	}
	with, without, noop := newReq("/with"), newReq("/without"), newReq("/noop")
	var tWith, tWithout, tNoop []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		// Rotate which goes first, so none gains from the order.
		switch len(tWith) % 3 {
		case 0:
			tWithout = append(tWithout, do(without))
			tWith = append(tWith, do(with))
			tNoop = append(tNoop, do(noop))
		case 1:
			tWith = append(tWith, do(with))
			tNoop = append(tNoop, do(noop))
			tWithout = append(tWithout, do(without))
		default:
			tNoop = append(tNoop, do(noop))
			tWithout = append(tWithout, do(without))
			tWith = append(tWith, do(with))
		}
	}
	// Medians: a loaded machine adds long outliers to either side.
	mWith, mWithout, mNoop := median(tWith), median(tWithout), median(tNoop)
	b.ReportMetric(float64(mWithout.Nanoseconds()), "ns/req-without")
	b.ReportMetric(float64(mWith.Nanoseconds()), "ns/req-with")
	b.ReportMetric(float64(mWith)/float64(mWithout), "with/without")
	b.ReportMetric(float64(mNoop)/float64(mWithout), "noop/without")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
