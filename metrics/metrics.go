// Package metrics holds usersync's Prometheus series, on a registry of its
// own so two servers in one process (tests) never share counters.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the series usersync exports on /metrics.
type Metrics struct {
	registry *prometheus.Registry

	// WebhookEvents counts deliveries by Clerk event type and outcome
	// (applied, stale, duplicate, ignored, invalid_signature, invalid_event, future_timestamp,
	// too_large, error).
	WebhookEvents *prometheus.CounterVec
	// LoginSyncs counts /api/user/sync answers by outcome.
	LoginSyncs *prometheus.CounterVec
	// ClerkRequests counts Backend API calls by operation and status class.
	ClerkRequests *prometheus.CounterVec
	// ClerkThrottled counts Backend API calls refused, unsent, because the
	// process's budget (CLERK_API_RATE, or a 429's pause) had nothing left
	// before the caller's deadline.
	ClerkThrottled prometheus.Counter
	// Upserts counts what the one upsert did, by source and outcome.
	Upserts *prometheus.CounterVec
	// HTTPDuration is request latency by route, method and status.
	HTTPDuration *prometheus.HistogramVec
	// WebhookEventsDeleted counts webhook_events rows the retention job deleted.
	WebhookEventsDeleted prometheus.Counter
	httpObservers        sync.Map // httpSeries → prometheus.Observer, saving the label lookup per request

	// RetentionLastSuccess is when the retention job last finished a pass
	// (Unix seconds; 0 until the first, and always 0 when retention is off).
	RetentionLastSuccess prometheus.Gauge

	// ReconcileRepaired counts rows a reconcile pass created, updated or
	// tombstoned after the database's first pass: changes the webhooks
	// missed, by table (users, organizations, memberships).
	ReconcileRepaired *prometheus.CounterVec
	// ReconcilePasses counts reconcile passes this process ran, by kind
	// (incremental, full) and result (ok, error).
	ReconcilePasses *prometheus.CounterVec
	// ReconcileLastSuccess is when the database's last successful reconcile
	// pass started (Unix seconds, read from the database by every replica;
	// 0 before the first). ReconcileInterval is SYNC_RECONCILE_INTERVAL in
	// seconds (0: reconcile off), so an alert can compare the two.
	ReconcileLastSuccess prometheus.Gauge
	ReconcileInterval    prometheus.Gauge
	// PruneRefused counts full reconcile passes whose prune the cap refused,
	// by table (contract section 9).
	PruneRefused *prometheus.CounterVec
	// WebhookLastApplied is when a webhook delivery last changed a row
	// (Unix seconds; read from webhook_events at start, then set per
	// delivery).
	WebhookLastApplied prometheus.Gauge
}

// New registers every series, the Go and process collectors and build info.
func New(version string) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		WebhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_webhook_events_total", Help: "Clerk webhook deliveries by event type and outcome.",
		}, []string{"type", "outcome"}),
		LoginSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_login_syncs_total", Help: "Login-time syncs (POST /api/user/sync) by outcome.",
		}, []string{"outcome"}),
		ClerkRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_clerk_api_requests_total", Help: "Clerk Backend API calls by operation and status class.",
		}, []string{"operation", "status"}),
		ClerkThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersync_clerk_api_throttled_total",
			Help: "Clerk Backend API calls not sent: the process's request budget had nothing left in time.",
		}),
		Upserts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_upserts_total", Help: "Snapshots applied through the one upsert, by source and outcome.",
		}, []string{"source", "outcome"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usersync_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		WebhookEventsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersync_webhook_events_deleted_total",
			Help: "webhook_events rows deleted by the retention job (older than WEBHOOK_EVENTS_RETENTION).",
		}),
		RetentionLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersync_retention_last_success_timestamp_seconds",
			Help: "When the webhook_events retention job last finished a pass (Unix time; 0 before the first).",
		}),
		ReconcileRepaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_reconcile_repaired_total",
			Help: "Rows a reconcile pass created, updated or tombstoned (changes the webhooks missed), by table.",
		}, []string{"table"}),
		ReconcilePasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_reconcile_passes_total", Help: "Reconcile passes this process ran, by kind and result.",
		}, []string{"kind", "result"}),
		ReconcileLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersync_reconcile_last_success_timestamp_seconds",
			Help: "When the database's last successful reconcile pass started (Unix time; 0 before the first).",
		}),
		ReconcileInterval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersync_reconcile_interval_seconds",
			Help: "SYNC_RECONCILE_INTERVAL in seconds (0: reconcile is off).",
		}),
		PruneRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_prune_refused_total",
			Help: "Reconcile prunes the prune cap refused (more rows would have been tombstoned than allowed), by table.",
		}, []string{"table"}),
		WebhookLastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersync_webhook_last_applied_timestamp_seconds",
			Help: "When a webhook delivery last changed a row (Unix time; 0 if none is recorded).",
		}),
	}
	for _, table := range []string{"users", "organizations", "memberships"} {
		m.ReconcileRepaired.WithLabelValues(table)
		m.PruneRefused.WithLabelValues(table)
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usersync_build_info", Help: "Always 1; labels name the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(m.WebhookEvents, m.LoginSyncs, m.ClerkRequests, m.ClerkThrottled, m.Upserts, m.HTTPDuration, buildInfo,
		m.WebhookEventsDeleted, m.RetentionLastSuccess,
		m.ReconcileRepaired, m.ReconcilePasses, m.ReconcileLastSuccess, m.ReconcileInterval, m.WebhookLastApplied, m.PruneRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchDB exports the connection pool's statistics (go_sql_* series).
func (m *Metrics) WatchDB(db *sql.DB, name string) {
	m.registry.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// ClerkTransport counts every Backend API call made through next, labelled
// with the name operation gives the request (the Clerk client names its
// calls: clerkapi.Operation), or "other" when it gives none.
func (m *Metrics) ClerkTransport(next http.RoundTripper, operation func(*http.Request) string) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		status := "error"
		switch {
		case err == nil:
			status = statusClass(resp.StatusCode)
		case errors.Is(req.Context().Err(), context.Canceled):
			// The caller gave up (a client hung up): not a Clerk failure, so
			// it stays out of UsersyncClerkUnavailable.
			status = "canceled"
		}
		op := operation(req)
		if op == "" {
			op = "other"
		}
		m.ClerkRequests.WithLabelValues(op, status).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func statusClass(code int) string { return strconv.Itoa(code/100) + "xx" }

// ObserveHTTP records one answered request.
func (m *Metrics) ObserveHTTP(route, method string, status int, took time.Duration) {
	if route == "" {
		route = "unmatched" // never the raw path: clients could mint series
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions:
	default:
		method = "other"
	}
	key := httpSeries{route, method, status}
	o, ok := m.httpObservers.Load(key)
	if !ok {
		o, _ = m.httpObservers.LoadOrStore(key, m.HTTPDuration.WithLabelValues(route, method, strconv.Itoa(status)))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
}

// httpSeries names one latency series; routes are the registered paths,
// so the cache of observers stays small.
type httpSeries struct {
	route, method string
	status        int
}
