package models

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"
)

// requiredGrants are the table privileges the service's role needs at run
// time: the upsert inserts and updates users (a deletion is an update to a
// tombstone); webhook_events rows are inserted, their outcome updated, and
// old ones deleted by retention; organizations and memberships are
// inserted and updated like users (a deletion is a tombstone there too);
// sync_state's one row is read and updated by the reconcile claim.
var requiredGrants = []struct{ table, privilege string }{
	{"users", "SELECT"}, {"users", "INSERT"}, {"users", "UPDATE"},
	{"webhook_events", "SELECT"}, {"webhook_events", "INSERT"},
	{"webhook_events", "UPDATE"}, {"webhook_events", "DELETE"},
	{"organizations", "SELECT"}, {"organizations", "INSERT"}, {"organizations", "UPDATE"},
	{"organization_memberships", "SELECT"}, {"organization_memberships", "INSERT"},
	{"organization_memberships", "UPDATE"},
	{"sync_state", "SELECT"}, {"sync_state", "UPDATE"},
}

// RuntimeGrants is what a table owner runs to let a restricted role run the
// service once `usersync migrate` has made the schema: one GRANT per table
// of requiredGrants and SELECT on the migration log that serve reads at
// start. Derived from requiredGrants, so what is checked and what is
// documented cannot drift apart.
func RuntimeGrants(role string) string {
	all := make([]string, len(requiredGrants))
	for i, g := range requiredGrants {
		all[i] = g.privilege + " ON " + g.table
	}
	return grantStatements(all, role, "\n") + "\nGRANT SELECT ON goose_db_version TO " + role + ";"
}

// RuntimeTables are the tables the service reads and writes.
func RuntimeTables() []string {
	var tables []string
	for _, g := range requiredGrants {
		if !slices.Contains(tables, g.table) {
			tables = append(tables, g.table)
		}
	}
	return tables
}

// CheckAccess reports whether the connected role may read and write the
// tables the service uses, naming every missing grant. A role that cannot
// would answer every webhook 503 behind a green readiness probe. SQLite has
// no roles; the file's writability shows at the first write.
func CheckAccess(ctx context.Context, db *gorm.DB) error {
	if DialectOf(db) != Postgres {
		return Ping(ctx, db)
	}
	var role string
	var missing, absent []string
	rows, err := db.WithContext(ctx).Raw(`SELECT current_user, v.t, v.p, to_regclass(v.t) IS NULL
		FROM (VALUES ` + grantValues() + `) AS v(t, p)
		WHERE CASE WHEN to_regclass(v.t) IS NULL THEN true
			ELSE NOT has_table_privilege(current_user, v.t, v.p) END`).Rows()
	if err != nil {
		return fmt.Errorf("check table privileges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, privilege string
		var gone bool
		if err := rows.Scan(&role, &table, &privilege, &gone); err != nil {
			return err
		}
		if gone {
			absent = append(absent, table)
		} else {
			missing = append(missing, privilege+" ON "+table)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check table privileges: %w", err)
	}
	if len(absent) > 0 {
		return fmt.Errorf("table %s does not exist (or is not on role %q's search_path): run usersync migrate",
			absent[0], role)
	}
	if len(missing) > 0 {
		return fmt.Errorf("role %q lacks %s: as the tables' owner, run %s", role,
			strings.Join(missing, ", "), grantStatements(missing, role, " "))
	}
	return nil
}

// grantStatements turns "PRIV ON table" items into one GRANT per table.
func grantStatements(missing []string, role, sep string) string {
	var tables []string
	privs := map[string][]string{}
	for _, m := range missing {
		priv, table, _ := strings.Cut(m, " ON ")
		if privs[table] == nil {
			tables = append(tables, table)
		}
		privs[table] = append(privs[table], priv)
	}
	stmts := make([]string, len(tables))
	for i, t := range tables {
		stmts[i] = fmt.Sprintf("GRANT %s ON %s TO %s;", strings.Join(privs[t], ", "), t, role)
	}
	return strings.Join(stmts, sep)
}

func grantValues() string {
	vals := make([]string, len(requiredGrants))
	for i, g := range requiredGrants {
		vals[i] = fmt.Sprintf("('%s', '%s')", g.table, g.privilege)
	}
	return strings.Join(vals, ", ")
}
