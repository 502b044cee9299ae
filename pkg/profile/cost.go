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

// PerRequestAt returns the cost of each request when something priced by
// the hour serves rate requests per second: what a benchmark's measured
// rate makes each request cost. 0 at no rate.
//
//	cost per request = usd_per_hour / (3600 × requests per second)
func (p Price) PerRequestAt(rate float64) float64 {
	if rate <= 0 {
		return 0
	}
	return p.USDPerHour / (3600 * rate)
}

// Share returns the cost of each of n requests to one model when a whole
// server, priced by the hour, ran for wall and spent busy of its
// allBusy instance time on that model: the server's cost is split by
// busy time, so a model that used 90% of the execution time pays 90% of
// the bill, idle time included. 0 when there were no requests or no
// busy time.
//
//	cost per request = usd_per_hour × wall_hours × (busy / all_busy) / n
func (p Price) Share(wall, busy, allBusy time.Duration, n float64) float64 {
	if n <= 0 || allBusy <= 0 {
		return 0
	}
	return p.Of(wall) * (busy.Seconds() / allBusy.Seconds()) / n
}
