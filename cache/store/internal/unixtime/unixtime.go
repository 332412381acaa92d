// Package unixtime converts the expiry times of stored entries to Unix
// nanoseconds, the form the memory and disk stores keep them in.
package unixtime

import (
	"math"
	"time"
)

// Nano returns t as Unix nanoseconds, saturated where they overflow (before
// 1678, after 2261), and never 0, which stands for no expiry; the zero time
// gives 0.
func Nano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.After(maxNano):
		return math.MaxInt64
	case t.Before(minNano):
		return math.MinInt64
	case t.Equal(time.Unix(0, 0)):
		return -1
	}
	return t.UnixNano()
}

var (
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)
