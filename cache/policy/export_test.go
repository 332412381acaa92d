package policy

import (
	"net/http"
	"time"
)

// Evaluate is EvaluateRequest for a request header and a stored response
// whose current_age is computed from its header and times (§4.2.3), as the
// table tests state their cases.
func Evaluate(reqHeader http.Header, h http.Header, f Freshness, requestTime, responseTime, now time.Time) Decision {
	return EvaluateAge(reqHeader, f, CurrentAge(h, requestTime, responseTime, now))
}

// EvaluateAge is EvaluateRequest for a request header.
func EvaluateAge(reqHeader http.Header, f Freshness, age time.Duration) Decision {
	rq := RequestDirectives(reqHeader)
	return EvaluateRequest(&rq, &f, age)
}

// ResponseFreshness is ResponseFreshnessStatus for a 200 response.
func ResponseFreshness(h http.Header, responseTime time.Time, opts Options) Freshness {
	return ResponseFreshnessStatus(http.StatusOK, h, responseTime, opts)
}

// RFC850Year exposes rfc850Year.
var RFC850Year = rfc850Year
