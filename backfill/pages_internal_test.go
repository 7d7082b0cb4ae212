package backfill

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// fetchPages hands pages to the writer in listing order whatever order the
// requests finish in, stops at the first short page, and on a failed page
// hands over the pages before it, then the error.
func TestFetchPages(t *testing.T) {
	errBroken := errors.New("broken")
	for _, tc := range []struct {
		name     string
		objects  int // in the listing; pages of 10
		total    int // given to fetchPages; -1 unknown
		failAt   int // page index that fails; -1 none
		want     []int
		wantErr  error
		maxFetch int
	}{
		{"several pages", 95, -1, -1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil, 10 + 4},
		{"an exact multiple ends with an empty page", 40, -1, -1, []int{0, 1, 2, 3, 4}, nil, 5 + 4},
		{"a known total requests no page past the end", 95, 95, -1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nil, 10},
		{"an empty listing", 0, -1, -1, []int{0}, nil, 4},
		{"a failed page: the pages before it, then the error", 95, -1, 6, []int{0, 1, 2, 3, 4, 5}, errBroken, 100},
		{"the first page fails", 95, -1, 0, nil, errBroken, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			fetched := 0
			fetch := func(ctx context.Context, offset int) (int, int, int, error) {
				mu.Lock()
				fetched++
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				if offset/10 == tc.failAt {
					return 0, 0, -1, errBroken
				}
				return offset / 10, max(0, min(10, tc.objects-offset)), tc.total, nil
			}
			out := make(chan int)
			var got []int
			done := make(chan struct{})
			go func() {
				defer close(done)
				for p := range out {
					got = append(got, p)
				}
			}()
			err := fetchPages(context.Background(), 4, 10, tc.total, fetch, out)
			close(out)
			<-done
			if !slices.Equal(got, tc.want) || !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Errorf("pages %v, err %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
			if fetched > tc.maxFetch {
				t.Errorf("%d requests, want at most %d", fetched, tc.maxFetch)
			}
		})
	}
}
