package main

import (
	"context"
	"flag"
	"io"

	"github.com/usersync/usersync/models"
)

const migrateHelp = `Usage: usersync migrate

Applies pending schema migrations to $DATABASE_URL and exits 0. serve does the
same at start; run this first where the service's role may not change the schema.
`

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("migrate", flag.ContinueOnError), args, stdout, migrateHelp); err != nil {
		return err
	}
	cfg, log, err := setup(getenv, stderr)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("database is up to date")
	return models.Close(db)
}
