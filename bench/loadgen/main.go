// Command loadgen fires realistic traffic at a running usersync and reports
// throughput, latency percentiles and the status breakdown. It is bench
// tooling (bench/run.sh builds it), not part of the product.
//
//	loadgen webhooks -c 32 -d 10s            # signed user.created/updated events
//	loadgen login -c 32 -d 10s               # login syncs, with a fake Clerk it serves itself
//	loadgen get -url http://localhost:8080/healthz
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

const usage = `Usage: loadgen MODE [flags]

Modes:
  webhooks   POST signed Clerk user events to /api/webhooks/clerk
  login      POST /api/user/sync with session tokens from a fake Clerk that
             loadgen serves on -clerk-addr (start usersync with
             CLERK_API_URL=http://<clerk-addr> CLERK_SECRET_KEY=sk_test_usersync_fake),
             signed with a key of its own (-key FILE to share one between runs)
  get        GET a URL (e.g. /healthz, for a baseline)

Run 'loadgen MODE -h' for a mode's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	opts := loadOptions{}
	fs.IntVar(&opts.Concurrency, "c", 32, "concurrent workers")
	fs.DurationVar(&opts.Duration, "d", 10*time.Second, "how long to fire")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load tool itself to this file")
	var target func() (request, error)
	switch args[0] {
	case "webhooks":
		w := webhookFlags(fs)
		target = func() (request, error) { return w.requests() }
	case "login":
		l := loginFlags(fs)
		defer l.close()
		target = func() (request, error) { return l.requests() }
	case "get":
		g := getFlags(fs)
		target = func() (request, error) { return g.requests() }
	default:
		return fmt.Errorf("unknown mode %q\n%s", args[0], usage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	next, err := target()
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep := fire(ctx, opts, next)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	rep.print(stdout, args[0])
	return nil
}
