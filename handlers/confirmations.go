package handlers

import (
	"sync"
	"time"
)

// maxConfirmations bounds the memory the confirmations take.
const maxConfirmations = 100_000

// confirmations remembers when a login sync last found a user unchanged in
// Clerk. Writing that to the row would cost a write per login (contract
// rule 7); each instance keeping its own is enough to answer "fresh".
type confirmations struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func newConfirmations() *confirmations {
	return &confirmations{last: map[string]time.Time{}}
}

func (c *confirmations) note(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.last) >= maxConfirmations {
		c.last = map[string]time.Time{} // forgetting only costs a Clerk call
	}
	c.last[id] = at
}

func (c *confirmations) at(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[id]
}
