package policy

import (
	"net/http"
)

// HasValidator tells whether h has an ETag or Last-Modified (RFC 9110
// §8.8), the validators a cache revalidates with (§4.3.1).
func HasValidator(h http.Header) bool {
	return nonEmpty(h["Etag"]) || nonEmpty(h["Last-Modified"])
}

func nonEmpty(v []string) bool {
	return len(v) > 0 && v[0] != ""
}
