package check_test

import (
	"testing"

	"github.com/usersync/usersync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
