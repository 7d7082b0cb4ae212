package backfill_test

import (
	"context"
	"testing"

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
