package clerkapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/internal/testenv"
	"github.com/usersync/usersync/models"
)

func ptr[T any](v T) *T { return &v }

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "clerk", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The repository keeps copies of Clerk's documented payloads so tests run on
// any clone; they must match the shared originals, in ../shared/fixtures
// beside the clone or in USERSYNC_SHARED_FIXTURES. Without either the test
// skips, except under CI=true, where it fails.
func TestFixturesMatchShared(t *testing.T) {
	dir := os.Getenv("USERSYNC_SHARED_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			testenv.Skip(t, "shared fixtures", "no ../shared/fixtures beside this clone; set USERSYNC_SHARED_FIXTURES to their directory")
		}
	}
	for _, name := range []string{"clerk_user_created_example.json", "clerk_user_deleted_example.json",
		"clerk_organization_created_example.json", "clerk_organization_deleted_example.json",
		"clerk_organization_membership_created_example.json", "clerk_organization_membership_deleted_example.json"} {
		shared, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(shared, readFixture(t, name)) {
			t.Errorf("testdata/clerk/%s differs from %s", name, filepath.Join(dir, name))
		}
	}
}

// dataOf is the data member of an event body, byte for byte.
func dataOf(t testing.TB, body []byte) []byte {
	t.Helper()
	var ev struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Data
}

func TestDecodeEventFixtures(t *testing.T) {
	body := readFixture(t, "clerk_user_created_example.json")
	created, instance, err := clerkapi.DecodeEvent("msg_1", body)
	if err != nil {
		t.Fatal(err)
	}
	want := models.Event{SvixID: "msg_1", Type: "user.created", Kind: models.EventUpsert, UserID: "user_29w83sxmDNGwOuEthce5gg56FcC",
		Snapshot: models.Snapshot{
			ID:            "user_29w83sxmDNGwOuEthce5gg56FcC",
			Email:         ptr("example@example.org"),
			EmailVerified: true,
			FirstName:     ptr("Example"),
			LastName:      ptr("Example"),
			ImageURL:      ptr("https://img.clerk.com/xxxxxx"),
			UpdatedAt:     1654012591835,
			RawJSON:       string(dataOf(t, body)),
		}}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if instance != "ins_123" {
		t.Errorf("instance = %q, want ins_123", instance)
	}

	deleted, instance, err := clerkapi.DecodeEvent("msg_2", readFixture(t, "clerk_user_deleted_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = models.Event{SvixID: "msg_2", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}
	if diff := cmp.Diff(want, deleted); diff != "" || instance != "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S" {
		t.Errorf("deleted (-want +got):\n%s, instance %q", diff, instance)
	}
}

// Each event type asks its change of the tables; every other type is
// recorded only, without a user id. The instance is the envelope's
// instance_id when it is a string.
func TestDecodeEventRoutes(t *testing.T) {
	for _, tc := range []struct {
		body     string
		kind     models.EventKind
		userID   string
		instance string
	}{
		{`{"type":"user.created","instance_id":"ins_1","data":{"id":"user_1"}}`, models.EventUpsert, "user_1", "ins_1"},
		{`{"type":"user.updated","data":{"id":"user_1","instance_id":"ins_x"}}`, models.EventUpsert, "user_1", ""},
		{`{"type":"user.deleted","instance_id":7,"data":{"id":"user_1","deleted":true}}`, models.EventDelete, "user_1", ""},
		{`{"type":"organization.updated","data":{"id":"org_1"}}`, models.EventOrgUpsert, "org_1", ""},
		{`{"type":"organization.deleted","data":{"id":"org_1","deleted":true}}`, models.EventOrgDelete, "org_1", ""},
		{`{"type":"organizationMembership.created","data":{"id":"orgmem_1","organization":{"id":"org_1"},"public_user_data":{"user_id":"user_1"}}}`,
			models.EventMembershipUpsert, "orgmem_1", ""},
		{`{"type":"organizationMembership.deleted","data":{"id":"orgmem_1"}}`, models.EventMembershipDelete, "orgmem_1", ""},
		{`{"type":"session.created","instance_id":"ins_1","data":{"id":"sess_1"}}`, models.EventIgnore, "", "ins_1"},
	} {
		ev, instance, err := clerkapi.DecodeEvent("msg_1", []byte(tc.body))
		if err != nil || ev.Kind != tc.kind || ev.UserID != tc.userID || instance != tc.instance {
			t.Errorf("DecodeEvent(%s) = kind %v, user %q, instance %q, %v; want %v, %q, %q",
				tc.body, ev.Kind, ev.UserID, instance, err, tc.kind, tc.userID, tc.instance)
		}
	}
	ev, _, _ := clerkapi.DecodeEvent("msg_1", []byte(`{"type":"organization.deleted","data":{"id":"org_1"}}`))
	if ev.Org.ID != "org_1" {
		t.Errorf("organization.deleted: org %q, want org_1", ev.Org.ID)
	}
	ev, _, _ = clerkapi.DecodeEvent("msg_1", []byte(`{"type":"organizationMembership.deleted","data":{"id":"orgmem_1"}}`))
	if ev.Membership.ID != "orgmem_1" {
		t.Errorf("organizationMembership.deleted without its organization: membership %q, want orgmem_1", ev.Membership.ID)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	cases := map[string]string{
		"not JSON":         `{"type":`,
		"array":            `[]`,
		"no type":          `{"data":{"id":"user_1"}}`,
		"empty type":       `{"type":"","data":{"id":"user_1"}}`,
		"type not string":  `{"type":5,"data":{"id":"user_1"}}`,
		"no data":          `{"type":"user.created"}`,
		"data not object":  `{"type":"user.created","data":"user_1"}`,
		"no data.id":       `{"type":"user.created","data":{}}`,
		"empty data.id":    `{"type":"user.created","data":{"id":""}}`,
		"data.id a number": `{"type":"user.created","data":{"id":1}}`,
		"null":             `null`,
		"ignored, no id":   `{"type":"session.created","data":{}}`,
		"control in type":  `{"type":"user.created\u0000","data":{"id":"user_1"}}`,
	}
	for name, body := range cases {
		if _, _, err := clerkapi.DecodeEvent("msg_1", []byte(body)); !errors.Is(err, clerkapi.ErrNotClerkEvent) {
			t.Errorf("%s: err = %v, want ErrNotClerkEvent", name, err)
		}
	}
	for body, want := range map[string]error{
		`{"type":"user.created","data":{"id":"user_1","email_addresses":{}}}`:         clerkapi.ErrInvalidUser,
		`{"type":"organization.created","data":{"id":"org_1","name":5}}`:              clerkapi.ErrInvalidOrganization,
		`{"type":"organizationMembership.updated","data":{"id":"orgmem_1"}}`:          clerkapi.ErrInvalidMembership,
		`{"type":"organizationMembership.deleted","data":{"id":"orgmem_1","role":1}}`: nil, // deletes the id all the same
	} {
		if _, _, err := clerkapi.DecodeEvent("msg_1", []byte(body)); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("DecodeEvent(%s): err = %v, want %v", body, err, want)
		}
	}
}

// user builds a Clerk user object around the fields a case sets.
func user(fields string) []byte {
	return []byte(`{"object":"user","id":"user_1","updated_at":42` + fields + `}`)
}

func TestSnapshotMapping(t *testing.T) {
	emails := `,"email_addresses":[
		{"id":"idn_a","email_address":"Old@Example.com","verification":{"status":"verified"}},
		{"id":"idn_b","email_address":"New@Example.COM","verification":{"status":"unverified"}}]`
	cases := []struct {
		name string
		json []byte
		want models.Snapshot
	}{
		{"primary email chosen and lower-cased", user(emails + `,"primary_email_address_id":"idn_b"`),
			models.Snapshot{Email: ptr("new@example.com")}},
		{"verified primary", user(emails + `,"primary_email_address_id":"idn_a"`),
			models.Snapshot{Email: ptr("old@example.com"), EmailVerified: true}},
		{"primary id matches nothing", user(emails + `,"primary_email_address_id":"idn_zzz"`),
			models.Snapshot{}},
		{"no primary id", user(emails), models.Snapshot{}},
		{"phone only", user(`,"email_addresses":[],"phone_numbers":[{"id":"idn_p","phone_number":"+15555550100"}],"primary_phone_number_id":"idn_p"`),
			models.Snapshot{PhoneNumber: ptr("+15555550100")}},
		{"username only", user(`,"username":"neo","first_name":"","last_name":null`),
			models.Snapshot{Username: ptr("neo")}},
		{"tier in any case", user(`,"public_metadata":{"tier":"pro"}`), models.Snapshot{Tier: "PRO"}},
		{"tier MAXX", user(`,"public_metadata":{"tier":"MaXx"}`), models.Snapshot{Tier: "MAXX"}},
		{"unknown tier ignored", user(`,"public_metadata":{"tier":"GOLD"}`), models.Snapshot{}},
		{"tier not a string ignored", user(`,"public_metadata":{"tier":3}`), models.Snapshot{}},
		{"metadata not an object", user(`,"public_metadata":"PRO"`), models.Snapshot{}},
		{"private tier ignored", user(`,"private_metadata":{"tier":"PRO"}`), models.Snapshot{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clerkapi.SnapshotFromJSON(tc.json)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.ID, want.UpdatedAt, want.RawJSON = "user_1", 42, string(tc.json)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSnapshotRejects(t *testing.T) {
	for _, body := range []string{`{"id":""}`, `{"id":"user_1","updated_at":"soon"}`, `[]`, `{"id":"u","email_addresses":{}}`} {
		if _, err := clerkapi.SnapshotFromJSON([]byte(body)); !errors.Is(err, clerkapi.ErrInvalidUser) {
			t.Errorf("%s: err = %v, want ErrInvalidUser", body, err)
		}
	}
}

// FuzzDecodeEvent feeds arbitrary bodies through decoding and mapping:
// nothing panics, and whatever maps keeps the rules' invariants.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(readFixture(f, "clerk_user_created_example.json"))
	f.Add(readFixture(f, "clerk_user_deleted_example.json"))
	f.Add(readFixture(f, "clerk_organization_membership_created_example.json"))
	f.Add([]byte(`{"type":"user.updated","data":{"id":"u","primary_email_address_id":"e","email_addresses":[{"id":"e","email_address":"ÀB@X"}],"public_metadata":{"tier":"maxx"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, _, err := clerkapi.DecodeEvent("msg_1", body)
		if err != nil {
			return
		}
		if ev.Type == "" || (ev.UserID == "") != (ev.Kind == models.EventIgnore) {
			t.Fatalf("accepted event without type, or a user id that does not fit its kind: %q", body)
		}
		if ev.Kind != models.EventUpsert {
			return
		}
		s := ev.Snapshot
		if s.ID != ev.UserID {
			t.Fatalf("snapshot id %q != data.id %q", s.ID, ev.UserID)
		}
		if s.Email != nil && (*s.Email == "" || *s.Email != strings.ToLower(*s.Email)) {
			t.Fatalf("email %q not lower-cased or empty", *s.Email)
		}
		switch s.Tier {
		case "", models.TierFree, models.TierPro, models.TierMaxx:
		default:
			t.Fatalf("tier %q", s.Tier)
		}
		if !json.Valid([]byte(s.RawJSON)) {
			t.Fatalf("raw JSON not valid")
		}
	})
}

// FuzzSnapshotFromJSON maps arbitrary user objects: nothing panics, and a
// mapped snapshot keeps the rules' invariants.
func FuzzSnapshotFromJSON(f *testing.F) {
	f.Add(user(`,"primary_email_address_id":"e","email_addresses":[{"id":"e","email_address":"X@Y.Z","verification":{"status":"verified"}}]`))
	f.Add(user(`,"primary_phone_number_id":"p","phone_numbers":[{"id":"p","phone_number":""}],"public_metadata":{"tier":"Maxx"}`))
	f.Add([]byte(`{"id":"u","first_name":"","username":null,"image_url":"","public_metadata":[]}`))
	f.Add([]byte(`{"id":"u","first_name":"a\u0000","unsafe_metadata":{"x":"\ud800","n":1.50}}`))
	f.Add(user(`,"primary_email_address_id":"e","email_addresses":[{"id":"e","email_address":"a\u0000@b"}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := clerkapi.SnapshotFromJSON(raw)
		if err != nil {
			if !errors.Is(err, clerkapi.ErrInvalidUser) {
				t.Fatalf("error %v is not ErrInvalidUser", err)
			}
			return
		}
		if s.ID == "" || !json.Valid([]byte(s.RawJSON)) || !utf8.ValidString(s.RawJSON) || strings.Contains(s.RawJSON, `\u0000`) {
			t.Fatalf("id %q, or raw JSON not storable: %q", s.ID, s.RawJSON)
		}
		if utf8.Valid(raw) && !strings.Contains(string(raw), `\`) && s.RawJSON != string(raw) {
			t.Fatal("valid UTF-8 raw JSON without escapes was changed")
		}
		for _, p := range []*string{s.Email, s.FirstName, s.LastName, s.ImageURL, s.Username, s.PhoneNumber} {
			if p != nil && *p == "" {
				t.Fatal("empty string stored instead of NULL")
			}
		}
		if s.Email != nil && *s.Email != strings.ToLower(*s.Email) {
			t.Fatalf("email %q not lower-cased", *s.Email)
		}
		if s.EmailVerified && s.Email == nil {
			t.Fatal("verified without an email")
		}
		wantStorable(t, "id", &s.ID, 255)
		wantStorable(t, "email", s.Email, 320)
		for _, p := range []*string{s.FirstName, s.LastName, s.ImageURL, s.Username, s.PhoneNumber} {
			if p != nil && (!utf8.ValidString(*p) || strings.Contains(*p, "\x00")) {
				t.Fatalf("text %q is not storable", *p)
			}
		}
	})
}

// wantStorable fails for a value Postgres cannot store in an indexed
// column: invalid UTF-8, a control character, or more than max bytes.
func wantStorable(t *testing.T, field string, v *string, max int) {
	t.Helper()
	if v != nil && (len(*v) > max || !utf8.ValidString(*v) || strings.ContainsFunc(*v, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		t.Fatalf("%s %q is not storable", field, *v)
	}
}
