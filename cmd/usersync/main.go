// Command usersync keeps an application's users table in step with Clerk.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/joho/godotenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	getenv, err := envWithDotenv(".env")
	if err == nil {
		err = run(ctx, os.Args[1:], getenv, os.Stdout, os.Stderr)
	}
	if err != nil {
		// One line, whatever the error: drivers wrap theirs over several.
		fmt.Fprintln(os.Stderr, "usersync:", strings.Join(strings.Fields(err.Error()), " "))
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad flag or bad configuration: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

const usage = `usersync keeps your users table in step with Clerk.

Usage:
  usersync [serve]            migrate the database, then serve HTTP until SIGINT/SIGTERM
  usersync migrate            apply pending schema migrations and exit
  usersync backfill           import every Clerk user [--dry-run] [--prune] [--page-size N]
  usersync webhook send       sign a sample (or --file) Clerk event and POST it to the service
  usersync check              check the deployment: one line per check, exit 1 if any fails
  usersync healthcheck        probe a running serve's /healthz: exit 0 on 200, 1 otherwise
  usersync version            print the version

Run 'usersync COMMAND --help' for a command's flags. Configuration comes from the
environment and a .env file in the working directory (the environment wins):
DATABASE_URL, PORT, CLERK_SECRET_KEY, CLERK_API_URL, CLERK_JWT_KEY,
CLERK_AUTHORIZED_PARTIES, CLERK_ISSUER, CLERK_WEBHOOK_SIGNING_SECRET,
SYNC_FRESHNESS, SYNC_RATE_LIMIT, CORS_ALLOWED_ORIGINS, WEBHOOK_EVENTS_RETENTION,
LOG_LEVEL, LOG_FORMAT (see README.md).
`

// run dispatches to a subcommand; it is main without the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	var err error
	switch name {
	case "serve":
		err = serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		err = migrate(ctx, args, getenv, stdout, stderr)
	case "backfill":
		err = runBackfill(ctx, args, getenv, stdout, stderr)
	case "webhook":
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, webhookSendHelp)
			return nil
		}
		if len(args) == 0 || args[0] != "send" {
			return usageError{errors.New("webhook: the only subcommand is 'webhook send' (see 'usersync webhook --help')")}
		}
		err = webhookSend(ctx, args[1:], getenv, stdout)
	case "check":
		err = runCheck(ctx, args, getenv, stdout)
	case "healthcheck":
		err = runHealthcheck(ctx, args, getenv, stdout)
	case "version":
		err = printVersion(args, stdout)
	default:
		return usageError{fmt.Errorf("unknown command %q; run 'usersync --help'", name)}
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the command printed its help
	}
	return err
}

// parseFlags parses a subcommand's flags. --help prints the usage to stdout
// and returns flag.ErrHelp; a bad flag is a one-line usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, help string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, help)
		fs.PrintDefaults()
		return flag.ErrHelp
	case err != nil:
		return usageError{fmt.Errorf("%s: %v (see 'usersync %s --help')", fs.Name(), err, fs.Name())}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// envWithDotenv returns a getenv that falls back to the .env file at path,
// so the real environment always wins. A missing file is fine.
func envWithDotenv(path string) (func(string) string, error) {
	dotenv, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		dotenv = nil
	} else if err != nil {
		return nil, usageError{fmt.Errorf("read %s: %v", path, err)}
	}
	return func(k string) string {
		if v, ok := os.LookupEnv(k); ok {
			return v
		}
		return dotenv[k]
	}, nil
}
