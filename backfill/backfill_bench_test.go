package backfill_test

import (
	"context"
	"testing"
	"time"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models/modelstest"
)

// BenchmarkBackfill20k imports 20,000 users from a local fake Clerk (same
// process, real HTTP, real clerk-sdk-go) into a fresh database per
// iteration, end to end, and reports users per second.
//
//	TEST_DATABASE_URL=postgres://… go test -run '^$' -bench Backfill20k -benchtime 3x ./backfill/
func BenchmarkBackfill20k(b *testing.B) {
	const users = 20_000
	for _, d := range modelstest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			fake := clerktest.New(b)
			for i := range users {
				fake.PutUser(benchUser(i))
			}
			client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
			var total float64
			for b.Loop() {
				b.StopTimer()
				db := modelstest.New(b, d)
				b.StartTimer()
				sum, err := backfill.Run(context.Background(), db, client, backfill.Options{PageSize: clerkapi.MaxPageSize})
				if err != nil || sum.Created != users {
					b.Fatalf("summary %+v, err %v", sum, err)
				}
				total += sum.UsersPerSecond()
			}
			b.ReportMetric(total/float64(b.N), "users/s")
		})
	}
}

// BenchmarkBackfillOrgs imports 1,000 organizations with 5,000
// memberships from a local fake Clerk (500 a page, real HTTP, one
// transaction a page) into a fresh database per iteration, and reports
// organizations and memberships per second (the organization part of the
// run: both listings and their writes).
//
//	TEST_DATABASE_URL=postgres://… go test -run '^$' -bench BackfillOrgs -benchtime 3x ./backfill/
func BenchmarkBackfillOrgs(b *testing.B) {
	const orgs, perOrg = 1000, 5
	for _, d := range modelstest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			fake := clerktest.New(b)
			seedOrgs(fake, orgs, perOrg)
			client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
			var orgRate, memRate float64
			for b.Loop() {
				b.StopTimer()
				db := modelstest.New(b, d)
				b.StartTimer()
				sum, err := backfill.Run(context.Background(), db, client, backfill.Options{PageSize: clerkapi.MaxPageSize})
				if err != nil || sum.Organizations.Created != orgs || sum.Memberships.Created != orgs*perOrg {
					b.Fatalf("summary %+v, err %v", sum, err)
				}
				orgRate += sum.OrgsPerSecond()
				memRate += sum.MembershipsPerSecond()
			}
			b.ReportMetric(orgRate/float64(b.N), "orgs/s")
			b.ReportMetric(memRate/float64(b.N), "memberships/s")
		})
	}
}

// BenchmarkBackfill20kLatency imports 20,000 users twice per iteration,
// each into a fresh database through a client with the budget
// CLERK_API_RATE=100/1s: once from a fake Clerk answering at once, once
// from one that takes 200 ms a page and answers 429 past 100 requests a
// second, as Clerk across the internet would. It reports both rates and
// their ratio: how much of the database-bound rate survives Clerk's latency.
//
//	TEST_DATABASE_URL=postgres://… go test -run '^$' -bench Backfill20kLatency -benchtime 3x ./backfill/
func BenchmarkBackfill20kLatency(b *testing.B) {
	const users = 20_000
	for _, d := range modelstest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			fake := clerktest.New(b)
			for i := range users {
				fake.PutUser(benchUser(i))
			}
			var fast, slow float64
			for b.Loop() {
				for _, latency := range []time.Duration{0, 200 * time.Millisecond} {
					b.StopTimer()
					db := modelstest.New(b, d)
					fake.SetLatency(latency)
					fake.SetRateLimit(100, time.Second)
					client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil,
						clerkapi.WithBudget(clerkapi.NewBudget(100, time.Second, nil)))
					b.StartTimer()
					sum, err := backfill.Run(context.Background(), db, client, backfill.Options{PageSize: clerkapi.MaxPageSize})
					if err != nil || sum.Created != users {
						b.Fatalf("latency %v: summary %+v, err %v", latency, sum, err)
					}
					if latency == 0 {
						fast += sum.UsersPerSecond()
					} else {
						slow += sum.UsersPerSecond()
					}
				}
			}
			if _, limited := fake.Concurrency(); limited > 0 {
				b.Errorf("the fake answered 429 %d times: the budget let more than 100 requests a second through", limited)
			}
			b.ReportMetric(fast/float64(b.N), "users/s-no-latency")
			b.ReportMetric(slow/float64(b.N), "users/s-200ms")
			b.ReportMetric(slow/fast, "ratio")
		})
	}
}
