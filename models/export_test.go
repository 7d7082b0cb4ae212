package models

import (
	"testing"

	"github.com/usersync/usersync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Internals the external tests drive directly.
var (
	ApplyInTx = apply
	Now       = now
)
