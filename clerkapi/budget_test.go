package clerkapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
)

// budgeted is a client of fake spending from b, with users user_0…user_9.
func budgeted(t *testing.T, b *clerkapi.Budget, rt http.RoundTripper) (*clerkapi.Client, *clerktest.Fake) {
	t.Helper()
	fake := clerktest.New(t)
	for i := range 10 {
		fake.PutUser(clerktest.User(fmt.Sprintf("user_%d", i), 100, "", nil))
	}
	httpClient := &http.Client{Timeout: clerkapi.CallTimeout, Transport: rt}
	return clerkapi.NewClient(fake.URL, clerktest.SecretKey, httpClient, clerkapi.WithBudget(b)), fake
}

// The burst goes at once; past it a caller whose deadline comes before the
// next token is refused at once, unsent, and told how long to wait.
func TestBudgetBurstThenRefuses(t *testing.T) {
	var refused atomic.Int32
	b := clerkapi.NewBudget(3, time.Hour, func() { refused.Add(1) }) // one token per 20 min after the burst
	client, fake := budgeted(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 3 {
		if _, err := client.GetUser(ctx, "user_1"); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := client.GetUser(ctx, "user_1")
	if !errors.Is(err, clerkapi.ErrThrottled) || !clerkapi.Retryable(err) {
		t.Fatalf("call past the burst: err = %v, want retryable ErrThrottled", err)
	}
	if ctx.Err() != nil {
		t.Error("the refusal waited for the deadline; want at once")
	}
	if ra := clerkapi.RetryAfter(err); ra <= 19*time.Minute || ra > 20*time.Minute {
		t.Errorf("RetryAfter = %s, want just under 20m", ra)
	}
	if n := fake.Hits(clerktest.OpGetUser); n != 3 {
		t.Errorf("requests sent = %d, want 3", n)
	}
	if n := refused.Load(); n != 1 {
		t.Errorf("throttled callback ran %d times, want 1", n)
	}
	// The refusal gave its reservation back: the next token is still the
	// one 20 min away, not 40.
	_, err = client.CountUsers(ctx)
	if ra := clerkapi.RetryAfter(err); !errors.Is(err, clerkapi.ErrThrottled) || ra > 20*time.Minute {
		t.Fatalf("count: err = %v, RetryAfter %s; want ErrThrottled within 20m", err, ra)
	}
}

// Past the burst, calls without a deadline wait for their token: 1/rate each.
func TestBudgetPacesAtItsRate(t *testing.T) {
	b := clerkapi.NewBudget(2, 200*time.Millisecond, nil) // 10/s, burst 2
	client, fake := budgeted(t, b, nil)
	start := time.Now()
	for i := range 4 {
		if _, err := client.GetUser(context.Background(), "user_1"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// The 3rd and 4th tokens exist 100 ms and 200 ms after the first call.
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
		t.Errorf("4 calls at 10/s with a burst of 2 took %s, want at least 200ms", elapsed)
	}
	if n := fake.Hits(clerktest.OpGetUser); n != 4 {
		t.Errorf("requests = %d, want 4", n)
	}
}

// A 429 holds back every caller of the budget for its Retry-After: one
// whose deadline comes first is refused unsent, the others wait and succeed.
func TestBudget429PausesEveryCaller(t *testing.T) {
	client, fake := budgeted(t, clerkapi.NewBudget(0, 0, nil), nil) // no rate, only the pause
	fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	start := time.Now()
	if _, err := client.GetUser(context.Background(), "user_1"); !errors.Is(err, clerkapi.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := client.ListUsers(ctx, 0, 10)
	if !errors.Is(err, clerkapi.ErrThrottled) || ctx.Err() != nil {
		t.Fatalf("short deadline during the pause: err = %v (ctx %v), want ErrThrottled at once", err, ctx.Err())
	}
	if ra := clerkapi.RetryAfter(err); ra <= 0 || ra > time.Second {
		t.Errorf("RetryAfter = %s, want within the 1s pause", ra)
	}

	const callers = 5
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			_, err := client.GetUser(context.Background(), fmt.Sprintf("user_%d", i))
			errs <- err
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("caller after the pause: %v", err)
		}
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("callers finished %s after the 429, want after its 1s Retry-After", elapsed)
	}
	if n, l := fake.Hits(clerktest.OpGetUser), fake.Hits(clerktest.OpListUsers); n != 1+callers || l != 0 {
		t.Errorf("requests: get_user %d, list_users %d; want %d and 0", n, l, 1+callers)
	}
}

// sent records when each request left and when its 429 came back.
type sent struct {
	mu        sync.Mutex
	sends     []time.Time
	throttled []time.Time
}

func (s *sent) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sends = append(s.sends, time.Now())
	s.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		s.mu.Lock()
		s.throttled = append(s.throttled, time.Now())
		s.mu.Unlock()
	}
	return resp, err
}

// A storm of 429s: callers retrying at once do not hammer Clerk while it
// asks them to wait, and each ends with success or, when its deadline is
// shorter than the pause, an ErrThrottled before that deadline.
func TestBudget429Storm(t *testing.T) {
	const callers, storm = 6, 12
	rec := &sent{}
	client, fake := budgeted(t, clerkapi.NewBudget(100, time.Second, nil), rec)
	for range storm {
		fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	}
	var wg sync.WaitGroup
	problems := make(chan error, 100)
	for i := range callers {
		deadline := 5 * time.Second
		if i%2 == 0 {
			deadline = 300 * time.Millisecond // shorter than the pause: refused while it lasts
		}
		wg.Go(func() {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				_, err := client.GetUser(ctx, fmt.Sprintf("user_%d", i))
				late := ctx.Err()
				cancel()
				switch {
				case err == nil:
					return
				case errors.Is(err, clerkapi.ErrThrottled):
					if late != nil {
						problems <- fmt.Errorf("caller %d: refused only after its deadline", i)
					}
					time.Sleep(clerkapi.RetryAfter(err))
				case errors.Is(err, clerkapi.ErrRateLimited):
					// Retry at once: the budget makes it wait.
				default:
					problems <- fmt.Errorf("caller %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(problems)
	for err := range problems {
		t.Error(err)
	}
	if n := fake.Hits(clerktest.OpGetUser); n != storm+callers {
		t.Errorf("requests = %d, want the %d answered 429 and one success per caller", n, storm+callers)
	}
	// Only requests already past the budget when a 429 came back (at most
	// one per other caller) may reach Clerk during its pause.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, at := range rec.throttled {
		during := 0
		for _, s := range rec.sends {
			if s.After(at) && s.Before(at.Add(time.Second)) {
				during++
			}
		}
		if during > callers-1 {
			t.Errorf("%d requests sent during the pause of a 429, want at most %d", during, callers-1)
		}
	}
}

// A client without a budget is not limited (tests and tools).
func TestNoBudgetIsUnlimited(t *testing.T) {
	fake := clerktest.New(t)
	fake.PutUser(clerktest.User("user_1", 100, "", nil))
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "60"})
	if _, err := client.GetUser(context.Background(), "user_1"); !errors.Is(err, clerkapi.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.GetUser(ctx, "user_1"); err != nil {
		t.Fatalf("after a 429 without a budget: %v, want no pause", err)
	}
}
