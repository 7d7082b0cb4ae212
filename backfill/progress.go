package backfill

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Progress reports a run as it goes: a live bar on a terminal, otherwise a
// log line every few seconds.
type Progress struct {
	out      io.Writer
	log      *slog.Logger
	terminal bool
	every    time.Duration

	mu          sync.Mutex
	unit        string // what is counted: users, organizations, memberships
	total       int
	start, last time.Time
}

// NewProgress draws a bar on out when terminal is true, and otherwise logs
// a line through log at most every interval.
func NewProgress(out io.Writer, log *slog.Logger, terminal bool, interval time.Duration) *Progress {
	return &Progress{out: out, log: log, terminal: terminal, every: interval}
}

// Start sets the expected total of users (0 when unknown) and the clock.
func (p *Progress) Start(total int) { p.StartKind("users", total) }

// StartKind starts counting another kind of object (organizations,
// memberships), with its own total and clock.
func (p *Progress) StartKind(unit string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unit, p.total, p.start, p.last = unit, total, time.Now(), time.Now()
}

// Update reports how many of the current kind are done so far.
func (p *Progress) Update(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.terminal {
		if now.Sub(p.last) >= 100*time.Millisecond {
			p.draw(done, now)
		}
		return
	}
	if now.Sub(p.last) >= p.every {
		rate, eta := p.rate(done, now)
		p.log.Info("backfill progress", "kind", p.unit, "done", done, "total", p.total, p.unit+"_per_second", int(rate), "eta", eta)
		p.last = now
	}
}

// Finish draws the final state and ends the bar's line.
func (p *Progress) Finish(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		p.draw(done, time.Now())
		fmt.Fprintln(p.out)
	}
}

func (p *Progress) draw(done int, now time.Time) {
	const width = 30
	rate, eta := p.rate(done, now)
	bar, pct := strings.Repeat("-", width), ""
	if p.total > 0 {
		filled := min(width, done*width/p.total)
		bar = strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
		pct = fmt.Sprintf(" %3d%%", min(100, done*100/p.total))
	}
	fmt.Fprintf(p.out, "\r%s [%s]%s %d/%d  %.0f %s/s  ETA %s   ", p.unit, bar, pct, done, p.total, rate, p.unit, eta)
	p.last = now
}

// rate is users per second since Start, and the time left at that rate.
func (p *Progress) rate(done int, now time.Time) (float64, string) {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 || done == 0 {
		return 0, "?"
	}
	rate := float64(done) / secs
	if p.total <= done {
		return rate, "0s"
	}
	left := time.Duration(float64(p.total-done) / rate * float64(time.Second))
	return rate, left.Round(time.Second).String()
}
