package profile

import "time"

// Price is what one model instance costs to run, in US dollars per hour.
// Cost estimates charge requests for the instance time they used: busy
// time, not wall time, so that an idle instance's cost is not spread over
// the few requests it served.
type Price struct {
	USDPerHour float64
}

// Of returns the cost of d of instance time.
func (p Price) Of(d time.Duration) float64 { return p.USDPerHour * d.Hours() }

// PerRequest returns the cost of each of n requests that together kept
// instances busy for busy; 0 when there were none.
//
//	cost per request = usd_per_hour × busy_hours / requests
func (p Price) PerRequest(busy time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return p.Of(busy) / float64(n)
}
