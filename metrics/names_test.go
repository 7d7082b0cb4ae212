package metrics_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/usersync/usersync/metrics"
)

// Every series the alert rules and the Grafana dashboard use is one
// /metrics exports, so a renamed metric fails here instead of silently
// emptying a panel or disarming an alert.
func TestRulesAndDashboardUseExportedSeries(t *testing.T) {
	exported := exportedNames(t)
	rules, err := os.ReadFile("../deploy/prometheus/usersync.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, m := range regexp.MustCompile(`(?m)^\s+expr: (.+(?:\n\s{10,}.+)*)`).FindAllStringSubmatch(string(rules), -1) {
		exprs = append(exprs, m[1])
	}
	exprs = append(exprs, dashboardExprs(t)...)
	if len(exprs) < 20 {
		t.Fatalf("found only %d expressions; is the parsing broken?", len(exprs))
	}
	series := regexp.MustCompile(`\b(?:usersync|go_sql|process|go)_[a-z_]+\b`)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range series.FindAllString(e, -1) {
			used[name] = true
			if !exported[name] {
				t.Errorf("%q is used in %q but /metrics does not export it", name, e)
			}
		}
	}
	for _, must := range []string{"usersync_webhook_events_total", "usersync_login_syncs_total", "usersync_clerk_api_requests_total",
		"usersync_http_request_duration_seconds_bucket", "go_sql_in_use_connections", "usersync_webhook_events_deleted_total",
		"usersync_reconcile_repaired_total", "usersync_reconcile_passes_total", "usersync_reconcile_last_success_timestamp_seconds",
		"usersync_prune_refused_total",
		"usersync_reconcile_interval_seconds", "usersync_webhook_last_applied_timestamp_seconds"} {
		if !used[must] {
			t.Errorf("neither the rules nor the dashboard use %s", must)
		}
	}
}

func dashboardExprs(t *testing.T) []string {
	b, err := os.ReadFile("../deploy/grafana/usersync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// exportedNames are the sample names /metrics serves once every labelled
// series has a child (a vector without children is not exported at all).
func exportedNames(t *testing.T) map[string]bool {
	m := metrics.New("test")
	m.WebhookEvents.WithLabelValues("user.created", "applied").Inc()
	m.LoginSyncs.WithLabelValues("fresh").Inc()
	m.ClerkRequests.WithLabelValues("get_user", "2xx").Inc()
	m.Upserts.WithLabelValues("webhook", "created").Inc()
	m.ReconcilePasses.WithLabelValues("incremental", "ok").Inc()
	m.ObserveHTTP("/healthz", "GET", 200, 0)
	m.WatchDB(sql.OpenDB(noConnector{}), "test")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	names := map[string]bool{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	return names
}

// noConnector is a database that is never connected to: the pool
// statistics collector only reads its counters.
type noConnector struct{}

func (noConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database")
}
func (noConnector) Driver() driver.Driver { return nil }
