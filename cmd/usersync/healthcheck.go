package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/usersync/usersync/config"
)

const healthcheckHelp = `Usage: usersync healthcheck [--url URL] [--timeout D]

Probes a running serve and exits 0 when it answers 200, 1 otherwise: the
container image's HEALTHCHECK, which has no shell or wget to do it. The default
URL is http://127.0.0.1:$PORT/healthz (200 while the process runs); use
--url http://127.0.0.1:$PORT/readyz to wait for the database too.
`

func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	target := fs.String("url", "", "URL to probe (default http://127.0.0.1:$PORT/healthz)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := parseFlags(fs, args, stdout, healthcheckHelp); err != nil {
		return err
	}
	if *target == "" {
		// Only PORT, not config.Load: the probe must not fail on settings
		// that have nothing to do with whether the server answers.
		port := config.DefaultPort
		if v := getenv("PORT"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return usageError{fmt.Errorf("PORT: %q is not a TCP port (1-65535)", v)}
			}
			port = n
		}
		*target = fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return usageError{fmt.Errorf("healthcheck: --url: %v", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *target, resp.Status)
	}
	fmt.Fprintln(stdout, "ok:", *target, "answered", resp.Status)
	return nil
}
