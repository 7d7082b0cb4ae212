package backfill_test

import (
	"testing"

	"github.com/usersync/usersync/internal/testenv"
)

// TestMain says at the end how many tests were skipped and why.
func TestMain(m *testing.M) { testenv.Main(m) }
