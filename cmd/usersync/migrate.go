package main

import (
	"context"
	"flag"
	"io"
)

const migrateHelp = `Usage: usersync migrate

Applies pending schema migrations and exits 0: over $DATABASE_URL_UNPOOLED when
it is set (a direct connection), else over $DATABASE_URL. serve does the same at
start; run this first, as a role that owns the schema, where the service's own
role may not change it. Instances started together migrate once: the others wait.
`

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("migrate", flag.ContinueOnError), args, stdout, migrateHelp); err != nil {
		return err
	}
	cfg, log, err := setup(getenv, stderr)
	if err != nil {
		return err
	}
	if err := makeSQLiteDir(cfg.Database); err != nil {
		return err
	}
	if err := migrateSchema(ctx, cfg, log); err != nil {
		return err
	}
	log.Info("database is up to date")
	return nil
}
