package e2e

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Prober measures the availability of an HTTP endpoint from outside, as a
// client of the simulated core proxy would. It sends one GET every Interval
// and records when responses with status 200 arrived. The maximum time
// between two such responses is the downtime a client saw.
type Prober struct {
	// URL is the endpoint, such as the core proxy's http://127.0.0.1:PORT/.
	URL string
	// Interval is the time between the starts of two requests. Zero
	// means 10 ms.
	Interval time.Duration
	// Timeout bounds each request. Zero means 1 s.
	Timeout time.Duration

	mu     sync.Mutex
	result ProbeResult
	last   time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// ProbeResult is what a Prober recorded between Start and Stop.
type ProbeResult struct {
	// Requests and Failures count the requests sent and those that got no
	// 200 response (refused, timed out or another status).
	Requests, Failures int
	// MaxGap is the longest time between two consecutive 200 responses,
	// counting Start and Stop as responses.
	MaxGap time.Duration
	// GapStart is when the longest gap began.
	GapStart time.Time
}

// Start begins probing in a goroutine. Call Stop to end it; Start must not
// be called twice.
func (p *Prober) Start() {
	interval, timeout := p.Interval, p.Timeout
	if interval == 0 {
		interval = 10 * time.Millisecond
	}
	if timeout == 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	p.last = time.Now()

	// A fresh connection per request, so that a restarted proxy is seen
	// at once instead of through a stale keep-alive connection.
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	go func() {
		defer close(p.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			p.probe(ctx, client)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
}

func (p *Prober) probe(ctx context.Context, client *http.Client) {
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err == nil {
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
	}
	if ctx.Err() != nil {
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.result.Requests++
	if !ok {
		p.result.Failures++
		return
	}
	p.record(time.Now())
}

// record closes the gap that ends at now. The caller holds p.mu.
func (p *Prober) record(now time.Time) {
	if gap := now.Sub(p.last); gap > p.result.MaxGap {
		p.result.MaxGap = gap
		p.result.GapStart = p.last
	}
	p.last = now
}

// Stop ends probing and returns the result. The time since the last 200
// response counts as a gap, so an endpoint that never came back shows up.
func (p *Prober) Stop() ProbeResult {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(time.Now())
	return p.result
}
