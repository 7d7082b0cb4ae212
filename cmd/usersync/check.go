package main

import (
	"context"
	"errors"
	"flag"
	"io"

	"github.com/usersync/usersync/check"
)

const checkHelp = `Usage: usersync check

Checks this deployment with the same configuration serve would use, and prints
one line per check: ok, or what is wrong and how to fix it. The checks:
configuration, database reachable, schema current, the role may write its
tables, pooled or direct connection, Clerk Backend API key accepted
(GET /v1/users?limit=1), clock skew against Clerk's, webhook signing secret
set, CORS origins. Writes nothing. Exits 0 when every check passes, 1 otherwise.
`

func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("check", flag.ContinueOnError), args, stdout, checkHelp); err != nil {
		return err
	}
	if !check.Run(ctx, getenv, stdout) {
		return errors.New("check: some checks failed (the FAIL lines say how to fix them)")
	}
	return nil
}
