package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/net/netutil"
	"gorm.io/gorm"

	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/models"
)

// startRetryAfter is the Retry-After of the 503s answered while serve waits
// for the database: about the longest pause between its attempts.
const startRetryAfter = "5"

// httpServer is serve's public listener. It listens before the database is
// open, so a replica started during an outage is alive (/healthz) but not
// ready (/readyz), and swaps to the real handler once the database is.
type httpServer struct {
	srv     *http.Server
	handler atomic.Pointer[http.Handler]
	served  chan error
	log     *slog.Logger
}

// maxConns caps the connections open at once. Each costs about 30 KiB
// (10,000 idle ones took 301 MiB RSS); 4,096 bound that near 120 MiB and are
// far above what the load and flood tests and Svix use (tens, and 512
// header-only connections). Past the cap new connections wait in the
// kernel's accept queue rather than being refused, and idle ones close
// after IdleTimeout.
const maxConns = 4096

// listen binds $PORT and serves notReady until serve hands over the real
// handler. A port that cannot be bound fails the start at once.
func listen(port int, log *slog.Logger) (*httpServer, error) {
	return listenLimited(port, maxConns, log)
}

// listenLimited is listen with at most limit connections open at once.
func listenLimited(port, limit int, log *slog.Logger) (*httpServer, error) {
	s := &httpServer{log: log, served: make(chan error, 1)}
	var h http.Handler = http.HandlerFunc(notReady)
	s.handler.Store(&h)
	s.srv = &http.Server{
		Addr:    fmt.Sprintf(":%d", port),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.handler.Load()).ServeHTTP(w, r) }),
		// Echo sets no timeouts of its own: without ReadHeaderTimeout a client
		// that sends headers slowly holds a connection forever.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      handlers.RequestTimeout + 5*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("PORT: cannot listen on port %d (another process may hold it; set PORT to a free one): %w", port, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "max_conns", limit)
	go func() { s.served <- s.srv.Serve(netutil.LimitListener(ln, limit)) }()
	return s, nil
}

// notReady answers while the database is not open yet: nothing is
// acknowledged, so Svix and clients retry.
func notReady(w http.ResponseWriter, r *http.Request) {
	status, body := http.StatusServiceUnavailable, `{"error":"database unavailable, retry later"}`
	switch r.URL.Path {
	case "/healthz":
		status, body = http.StatusOK, `{"status":"ok"}`
	case "/readyz":
		body = `{"error":"database unavailable"}`
	default:
		w.Header().Set("Retry-After", startRetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.WriteString(w, body+"\n")
	}
}

// serve swaps in h and serves until ctx ends, then drains in-flight requests.
func (s *httpServer) serve(ctx context.Context, h http.Handler) error {
	s.handler.Store(&h)
	select {
	case err := <-s.served:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// close stops a server that never got the real handler; after serve it
// does nothing.
func (s *httpServer) close() {
	s.srv.Close()
}

// waitForDB opens and migrates the database (openDB), retrying with the
// connection pool's back-off for as long as the failure is one that waiting
// can fix (see waitable). It returns a nil *gorm.DB and a nil error when ctx
// ends first: SIGINT or SIGTERM during the wait is a normal shutdown.
func waitForDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*gorm.DB, error) {
	for failures := 0; ; failures++ {
		db, err := openDB(ctx, cfg, log)
		if err == nil {
			if failures > 0 {
				log.Info("database available; serving", "failed_attempts", failures)
			}
			return db, nil
		}
		if ctx.Err() != nil {
			log.Info("stopped while waiting for the database")
			return nil, nil
		}
		if cfg.Database.Dialect != models.Postgres || !waitable(err) {
			return nil, err
		}
		pause := models.DialBackoff(failures)
		log.Warn("database not available at start; not ready until it is",
			"err", err, "failed_attempts", failures+1, "retry_in", pause.String())
		select {
		case <-ctx.Done():
			log.Info("stopped while waiting for the database")
			return nil, nil
		case <-time.After(pause):
		}
	}
}

// waitable reports whether a failure to open the database is one that time
// fixes: the server (or a pooler in front of it) cannot be reached, refuses
// or drops the connection, is starting up or shutting down (57P03, 57P01,
// 57P02), or has no connection slot free (53300). Everything else needs an
// operator, so serve exits 1 at once rather than look like an outage: a wrong
// password or an unknown role (28P01, 28000), a database that does not exist
// (3D000), a server older than Postgres 12, a TLS failure, a failed migration,
// a missing grant, an unwritable SQLite file.
func waitable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		// Class 08, connection exception: also how PgBouncer reports that
		// it cannot reach the server.
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error
	return errors.As(err, &netErr) || pgconn.Timeout(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
