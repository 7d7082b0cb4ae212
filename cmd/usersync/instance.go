package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// instanceCheckTimeout bounds serve's start-up look at the key's instance:
// a Clerk outage must not keep the webhooks from being served.
const instanceCheckTimeout = 10 * time.Second

// guardKeyInstance learns CLERK_SECRET_KEY's Clerk instance with one
// GET /v1/jwks (also when CLERK_JWT_KEY verifies sessions without it) and
// checks it against the instance the database mirrors, binding an unbound
// database to it (contract section 9).
func guardKeyInstance(ctx context.Context, db *gorm.DB, client *clerkapi.Client) error {
	key, err := client.Instance(ctx)
	if err != nil {
		return err
	}
	return models.GuardInstance(ctx, db, key)
}

// checkInstanceAtStart runs the guard once as serve starts. A key of
// another instance stops serve; when Clerk cannot be asked (or its JWKS
// names no single instance), serve starts, and the returned guard keeps
// reconcile from passing until the check has succeeded.
func checkInstanceAtStart(ctx context.Context, db *gorm.DB, client *clerkapi.Client, log *slog.Logger) (func(context.Context) error, error) {
	if client == nil {
		return nil, nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, instanceCheckTimeout)
	defer cancel()
	err := guardKeyInstance(checkCtx, db, client)
	var mismatch *models.InstanceMismatchError
	switch {
	case err == nil:
		bound, _ := models.BoundInstance(ctx, db)
		log.Info("Clerk instance", "instance", bound)
		return nil, nil
	case errors.As(err, &mismatch):
		return nil, err
	case errors.Is(err, clerkapi.ErrInstanceUnknown):
		log.Warn("the key's Clerk instance is unknown: the database's binding is not checked", "err", err)
		return nil, nil
	}
	log.Warn("could not learn CLERK_SECRET_KEY's Clerk instance; reconcile waits until it can", "err", err)
	return func(ctx context.Context) error { return guardKeyInstance(ctx, db, client) }, nil
}
