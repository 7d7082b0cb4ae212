package models

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/usersync/usersync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Now is the row time the engine uses.
var Now = now

// ApplyHolding is Apply that, with its locks held and its writes about to
// go, signals held and waits for release before it writes and commits.
func ApplyHolding(ctx context.Context, db *gorm.DB, changes []Change, src Source, held chan<- struct{},
	release <-chan struct{}) ([]Outcome, error) {
	return inTx(ctx, db, false, func(s session) ([]Outcome, error) {
		return apply(ctx, holding{s, held, release}, changes, src, now())
	})
}

type holding struct {
	session
	held    chan<- struct{}
	release <-chan struct{}
}

func (h holding) finish(ctx context.Context, steps ...*step) error {
	h.held <- struct{}{}
	<-h.release
	return h.session.finish(ctx, steps...)
}
