package clerkapi_test

import (
	"testing"

	"github.com/usersync/usersync/clerkapi"
)

// BenchmarkDecodeEvent decodes and maps a ~1.2 KB user.created event, the
// webhook's decoding cost per event.
//
//	go test -run '^$' -bench DecodeEvent -benchmem ./clerkapi/
func BenchmarkDecodeEvent(b *testing.B) {
	body := readFixture(b, "clerk_user_created_example.json")
	for b.Loop() {
		if _, _, err := clerkapi.DecodeEvent("msg_1", body); err != nil {
			b.Fatal(err)
		}
	}
}
