package policy

import (
	"time"
)

// CurrentAge is current_age of §4.2.3 for a response with header h, asked
// at requestTime and received at responseTime, at now. It is never
// negative and never more than MaxDelta (§5.1: an overflowing age is sent
// as 2^31).
func CurrentAge(h FieldReader, requestTime, responseTime, now time.Time) time.Duration {
	return AgeAt(CorrectedInitialAge(h, requestTime, responseTime), responseTime, now)
}

// CorrectedInitialAge is corrected_initial_age of §4.2.3, which depends
// only on the stored response, so that the handler may compute it once
// when storing and then call AgeAt per request:
//
//	apparent_age = max(0, response_time - date_value)
//	response_delay = response_time - request_time
//	corrected_age_value = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//
// age_value is the Age field read as delta-seconds; when it holds several
// values (a list or several lines) the first is used (RFC 9110 §5.5), so
// "Age: 7200, 0" is 7200; an invalid first value (a sign, a non-integer)
// is ignored (§5.1) and reads as 0. A missing
// or invalid Date makes apparent_age 0 (date_value = response_time, RFC
// 9110 §6.6.1).
func CorrectedInitialAge(h FieldReader, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := singleDate(h.Values("Date")); ok {
		apparent = max(0, responseTime.Sub(date))
	}
	var ageValue time.Duration
	if v := h.Values("Age"); len(v) > 0 {
		// RFC 9110 §5.5: a singleton field sent as a list (one line "7200,
		// 0" or several lines) is read by its first value.
		first, _ := nextListElement(v[0])
		ageValue, _ = parseDelta(first)
	}
	delay := min(max(0, responseTime.Sub(requestTime)), MaxDelta)
	return min(max(apparent, ageValue+delay), MaxDelta) // ageValue, delay <= MaxDelta: no overflow
}

// AgeAt is current_age = corrected_initial_age + resident_time with
// resident_time = now - response_time (§4.2.3), clamped to [0, MaxDelta].
func AgeAt(correctedInitialAge time.Duration, responseTime, now time.Time) time.Duration {
	resident := max(0, now.Sub(responseTime))
	return min(max(0, correctedInitialAge)+min(resident, MaxDelta), MaxDelta)
}
