package models_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// The example joins in docs/organizations.md run on both databases and
// answer what they say: the member with their email and role, one seat,
// the user's organization.
func TestDocumentedJoins(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "organizations.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 3 {
		t.Fatalf("%d sql blocks in docs/organizations.md, want 3", len(blocks))
	}
	const org, user = "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "user_2h8op3Isl1QR7tKu5FGNfaLKEoU"
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		if _, err := models.ApplySnapshot(ctx, db, snap(user, 1, email("jane@acme.com")), models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		changes := append(models.MembershipChanges(models.ApplyMembership,
			withOrg(memSnap("orgmem_1", org, user, 1, 1, "org:admin"), orgSnap(org, 1, orgTier("PRO")))),
			models.MembershipChanges(models.ApplyMembership, withOrg(memSnap("orgmem_2", org, "user_gone", 1, 1, "org:member"), orgSnap(org, 1)))...)
		if _, err := models.Apply(ctx, db, changes, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		if _, err := models.Tombstone(ctx, db, "user_gone", models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		for i, want := range [][]any{
			{user, "jane@acme.com", "org:admin"},
			{org, "Org 1", "PRO", int64(1), int64(1)},
			{org, "Org 1", org, "org:admin", "PRO"},
		} {
			// The driver takes one statement without the ; a psql user types.
			rows, err := db.Raw(strings.TrimRight(blocks[i][1], ";\n ")).Rows()
			if err != nil {
				t.Fatalf("query %d: %v", i+1, err)
			}
			var got [][]any
			for rows.Next() {
				vals := make([]any, len(want))
				ptrs := make([]any, len(want))
				for j := range vals {
					ptrs[j] = &vals[j]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				got = append(got, vals)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("query %d: %v", i+1, err)
			}
			rows.Close()
			if len(got) != 1 || len(got[0]) != len(want) {
				t.Fatalf("query %d answered %v, want one row %v", i+1, got, want)
			}
			for j := range want {
				if normalize(got[0][j]) != normalize(want[j]) {
					t.Errorf("query %d column %d = %v, want %v", i+1, j, got[0][j], want[j])
				}
			}
		}
	})
}

func normalize(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case int32:
		return int64(v)
	}
	return v
}
