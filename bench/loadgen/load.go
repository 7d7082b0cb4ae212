package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// request builds the next request to send; it is called from every worker.
type request func() (*http.Request, error)

type loadOptions struct {
	Concurrency int
	Duration    time.Duration
}

// report is what a run measured.
type report struct {
	Requests    int            `json:"requests"`
	Seconds     float64        `json:"seconds"`
	Rate        float64        `json:"rate_per_second"`
	P50ms       float64        `json:"p50_ms"`
	P95ms       float64        `json:"p95_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	Status      map[string]int `json:"status"`
	Errors      int            `json:"errors"`
	Concurrency int            `json:"concurrency"`
}

// fire runs Concurrency workers for Duration, each sending one request at a
// time; requests cut off by the end of the run are not counted.
func fire(ctx context.Context, opts loadOptions, next request) report {
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: opts.Concurrency * 2, MaxIdleConnsPerHost: opts.Concurrency * 2,
	}}
	type result struct {
		latencies []time.Duration
		status    map[int]int
		errors    int
	}
	results := make([]result, opts.Concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range opts.Concurrency {
		wg.Go(func() {
			r := &results[w]
			r.status = map[int]int{}
			for ctx.Err() == nil {
				req, err := next()
				if err != nil {
					r.errors++
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					r.errors++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.latencies = append(r.latencies, time.Since(t0))
				r.status[resp.StatusCode]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := report{Status: map[string]int{}, Concurrency: opts.Concurrency, Seconds: elapsed.Seconds()}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.latencies...)
		rep.Errors += r.errors
		for code, n := range r.status {
			rep.Status[strconv.Itoa(code)] += n
		}
	}
	slices.Sort(all)
	rep.Requests = len(all)
	rep.Rate = float64(len(all)) / elapsed.Seconds()
	if len(all) > 0 {
		ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Microseconds()) / 1000 }
		rep.P50ms, rep.P95ms, rep.P99ms, rep.MaxMs = ms(.50), ms(.95), ms(.99), ms(1)
	}
	return rep
}

func (r report) print(w io.Writer, mode string) {
	fmt.Fprintf(w, "%s: %d workers for %.1fs\n", mode, r.Concurrency, r.Seconds)
	fmt.Fprintf(w, "  requests  %d\n", r.Requests)
	fmt.Fprintf(w, "  rate      %.0f/s\n", r.Rate)
	fmt.Fprintf(w, "  latency   p50 %.2fms  p95 %.2fms  p99 %.2fms  max %.2fms\n", r.P50ms, r.P95ms, r.P99ms, r.MaxMs)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	fmt.Fprint(w, "  status   ")
	for _, c := range codes {
		fmt.Fprintf(w, " %s: %d", c, r.Status[c])
	}
	fmt.Fprintf(w, "\n  errors    %d (no answer)\n", r.Errors)
}
