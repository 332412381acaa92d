// Package policy holds the RFC 9111 rules of http_cache as plain functions
// on header fields and times, free of Caddy, so that every rule can be a
// table test. Every input, the current time included, is passed in.
//
// The signatures are the contract between the policy and the handler; do
// not change one without updating every caller. One file per concern:
// ccdirectives.go and targeted.go (§5.2, RFC 9213), storable.go (§3),
// freshness.go (§4.2.1, §4.2.2), age.go (§4.2.3), evaluate.go (§4.2.4,
// §5.2.1), validation.go (§4.3), vary.go (§4.1), hopbyhop.go (§3.1),
// invalidation.go (§4.4).
package policy

import (
	"time"
)

// Delta is a delta-seconds value (RFC 9111 §1.2.2), already clamped to
// 2^31 seconds, as a duration. Set tells whether the directive was present.
// A directive present with an invalid or conflicting value is Set with the
// most restrictive reading, e.g. max-age=abc is Set with D == 0 (stale,
// §4.2.1); see ParseCacheControl.
type Delta struct {
	Set bool
	D   time.Duration
}

// Directives is a parsed Cache-Control (or CDN-Cache-Control) field
// (RFC 9111 §5.2). Unknown directives are ignored; a directive given twice
// or with an invalid value is handled as §4.2.1 and §5.2 say.
type Directives struct {
	MaxAge               Delta
	SMaxAge              Delta
	MaxStale             Delta // request; MaxStaleAny when given without a value
	MaxStaleAny          bool
	MinFresh             Delta
	StaleWhileRevalidate Delta // RFC 5861 §3
	StaleIfError         Delta // RFC 5861 §4

	NoCache         bool
	NoCacheFields   []string // qualified no-cache="Set-Cookie"
	NoStore         bool
	Private         bool
	PrivateFields   []string // qualified private="X"
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	NoTransform     bool
	OnlyIfCached    bool
	Immutable       bool // RFC 8246
}

// Reason says why a response was not stored. It is used in Cache-Status's
// detail parameter, so values are short tokens.
type Reason string

// Reasons a response is not stored.
const (
	ReasonNone             Reason = ""
	ReasonMethod           Reason = "method"             // not GET
	ReasonStatus           Reason = "status"             // status not cacheable by default and no explicit freshness, or not final
	ReasonStatusNotAllowed Reason = "status-not-allowed" // status not in the configured list
	ReasonReqNoStore       Reason = "request-no-store"
	ReasonNoStore          Reason = "no-store"
	ReasonPrivate          Reason = "private"
	ReasonAuthorization    Reason = "authorization"
	ReasonSetCookie        Reason = "set-cookie"
	ReasonVaryStar         Reason = "vary-star"
	ReasonNoFreshness      Reason = "no-freshness"          // neither freshness nor validator, and no default TTL
	ReasonNoCache          Reason = "no-cache-no-validator" // no-cache but nothing to revalidate with
	ReasonPartial          Reason = "partial"               // 206 or incomplete body
	ReasonTooLarge         Reason = "too-large"
	ReasonMustUnderstand   Reason = "must-understand"
	ReasonCredentials      Reason = "credentials" // request with Cookie or Authorization, response without explicit freshness
)

// defaultTTL is the operator's lifetime for a response with status that
// gives none: its StatusTTLs entry, else DefaultTTL; 0 when neither is set.
func (o *Options) defaultTTL(status int) time.Duration {
	if d, ok := o.StatusTTLs[status]; ok {
		return d
	}
	return o.DefaultTTL
}

// Options are the configurable parts of the policy.
type Options struct {
	// Statuses that may be stored; nil means those cacheable by default
	// (RFC 9110 §15.1) plus any final status with explicit freshness.
	// When set, only the listed statuses are stored, each treated as
	// cacheable by default (so DefaultTTL applies to it); 206 and 304 never.
	Statuses []int
	// AllowSetCookie stores responses with Set-Cookie (the handler then
	// never replays the cookie to another client).
	AllowSetCookie bool
	// DefaultTTL is the freshness lifetime of a response that gives none;
	// zero means such a response gets heuristic freshness when allowed and
	// is not stored when it has neither freshness nor a validator. When set,
	// it replaces the Last-Modified heuristic (§4.2.2).
	DefaultTTL time.Duration
	// StatusTTLs are DefaultTTL per status: a response with a listed
	// status that gives no freshness gets its lifetime here, in place of
	// DefaultTTL (nginx's proxy_cache_valid 404 1m). A listed status is
	// stored as if cacheable by default, as a status in Statuses is.
	StatusTTLs map[int]time.Duration
	// CredentialedHeuristics lets DefaultTTL and heuristic freshness apply
	// to a response to a request that carried Cookie or Authorization.
	// Off, such a response is stored only with explicit freshness from the
	// origin (max-age, s-maxage, Expires): a personal page that forgot its
	// Cache-Control is not served to others for DefaultTTL or a heuristic.
	CredentialedHeuristics bool
	// MaxTTL caps every freshness lifetime; zero means no cap.
	MaxTTL time.Duration
	// HeuristicFraction of the time since Last-Modified (§4.2.2); 0 means
	// 0.1. HeuristicMax caps it; 0 means 24h.
	HeuristicFraction float64
	HeuristicMax      time.Duration
	// StaleWhileRevalidate and StaleIfError are defaults applied when the
	// response sends none (RFC 5861); zero means off.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// StaleIfUnreachable is how long past its freshness a stored response
	// may be served when the origin cannot be reached (§4.2.4: "when the
	// cache is disconnected from the origin server"); zero means off.
	StaleIfUnreachable time.Duration
}

// Freshness is what the policy knows of a stored response's lifetimes.
type Freshness struct {
	Lifetime             time.Duration // freshness_lifetime, §4.2.1, capped by MaxTTL
	Heuristic            bool          // Lifetime is not explicit: from §4.2.2 (Last-Modified) or Options.DefaultTTL
	StaleWhileRevalidate time.Duration // window after Lifetime, RFC 5861
	StaleIfError         time.Duration // window after Lifetime, RFC 5861
	MustRevalidate       bool          // must-revalidate, proxy-revalidate or s-maxage: never serve stale (§5.2.2.2, §5.2.2.8, §5.2.2.10)
	NoCache              bool          // response no-cache: revalidate every use (§5.2.2.4)
	StaleIfUnreachable   time.Duration // window after Lifetime when the origin cannot be reached; 0 when a directive forbids stale (§4.2.4)
}

// Action is what to do with a stored response for a request.
type Action int

// Actions, in the order a cache prefers them.
const (
	Serve                Action = iota // fresh enough for the request
	ServeStaleRevalidate               // stale within stale-while-revalidate or the request's max-stale: serve, refresh in background
	Revalidate                         // stale (or no-cache): validate with the origin first; may serve stale if the origin fails within StaleIfError
)

// Decision is the outcome of EvaluateRequest.
type Decision struct {
	Action Action
	Age    time.Duration // current_age, for the Age field
	// TTL is freshness_lifetime - current_age (negative when stale), for
	// Cache-Status's ttl.
	TTL time.Duration
	// StaleIfErrorOK tells whether the stored response may be served if
	// revalidation fails (origin 5xx, refused, timeout) — RFC 5861 §4 and
	// the request's max-stale, never when MustRevalidate or NoCache.
	StaleIfErrorOK bool
	// StaleIfUnreachableOK tells whether the stored response may be served
	// when the origin cannot be reached at all (refused, reset or timed
	// out before any response): within Freshness.StaleIfUnreachable.
	StaleIfUnreachableOK bool
}
