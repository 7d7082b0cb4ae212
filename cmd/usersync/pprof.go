//go:build pprof

package main

import (
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profilerFlag registers serve's --pprof flag. It exists only in a build
// with -tags pprof (bench/run.sh's PPROF option): the profiler is tooling,
// not part of the product binary.
func profilerFlag(fs *flag.FlagSet) func(*slog.Logger) {
	addr := fs.String("pprof", "", "also serve net/http/pprof on this address (e.g. 127.0.0.1:6060) for profiling")
	return func(log *slog.Logger) {
		if *addr != "" {
			servePprof(*addr, log)
		}
	}
}

// servePprof exposes the profiler on its own listener, never on the public
// port. It listens before it returns, so the profiler answers once serve is
// ready; a failure is logged and serve goes on without it.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("pprof not started", "err", err)
		return
	}
	log.Info("pprof listening", "addr", ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			log.Error("pprof stopped", "err", err)
		}
	}()
}
