package backfill_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/backfill"
)

func TestProgressTerminalBar(t *testing.T) {
	var out bytes.Buffer
	p := backfill.NewProgress(&out, slog.New(slog.DiscardHandler), true, time.Second)
	p.Start(1000)
	time.Sleep(110 * time.Millisecond)
	p.Update(500)
	p.Finish(1000)
	got := out.String()
	for _, want := range []string{"\rusers [###############---------------]  50% 500/1000", "\rusers [##############################] 100% 1000/1000", "users/s", "ETA 0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar output %q lacks %q", got, want)
		}
	}
	if !strings.HasSuffix(got, "\n") {
		t.Error("bar line not ended")
	}
}

func TestProgressLogLines(t *testing.T) {
	var logs, out bytes.Buffer
	p := backfill.NewProgress(&out, slog.New(slog.NewTextHandler(&logs, nil)), false, 0)
	p.Start(0)
	p.Update(10)
	p.Finish(10)
	if out.Len() != 0 || !strings.Contains(logs.String(), "msg=\"backfill progress\" kind=users done=10 total=0") {
		t.Errorf("non-terminal: out %q, logs %q", out.String(), logs.String())
	}
}
