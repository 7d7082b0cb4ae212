package clerkapi_test

import (
	"testing"

	"github.com/usersync/usersync/clerkapi"
)

// BenchmarkParseEvent decodes and maps a ~1.2 KB user.created event, the
// webhook's decoding cost per event.
//
//	go test -run '^$' -bench ParseEvent -benchmem ./clerkapi/
func BenchmarkParseEvent(b *testing.B) {
	body := readFixture(b, "clerk_user_created_example.json")
	for b.Loop() {
		ev, err := clerkapi.ParseEvent(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ev.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}
