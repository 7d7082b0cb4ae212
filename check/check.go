// Package check inspects a deployment the way `usersync check` reports it:
// one function per check, each returning one line, ok or what is wrong and
// how to fix it.
package check

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
)

// Status is the verdict of one check.
type Status string

// The three verdicts. Skip is only given when an earlier check failed.
const (
	OK   Status = "ok"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// Result is one line of the report.
type Result struct {
	Name   string
	Status Status
	Detail string // what was found, or what is wrong and how to fix it
}

func (r Result) String() string { return fmt.Sprintf("%-4s  %-15s %s", r.Status, r.Name, r.Detail) }

func ok(name, format string, args ...any) Result {
	return Result{Name: name, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

func fail(name, format string, args ...any) Result {
	return Result{Name: name, Status: Fail, Detail: fmt.Sprintf(format, args...)}
}

// Checker holds what the checks share: the configuration, the database once
// opened, and Clerk's clock once asked.
type Checker struct {
	Cfg  config.Config
	HTTP *http.Client     // for the Clerk calls; one with clerkapi.CallTimeout when nil
	Now  func() time.Time // time.Now when nil

	db          *gorm.DB
	clerkClient *clerkapi.Client // made by the first Clerk check
	clerkDate   time.Time        // the Date header of Clerk's answer; zero if none
}

// Run loads the configuration through getenv and runs every check in order,
// writing each line to w as it completes. It reports whether all passed.
func Run(ctx context.Context, getenv func(string) string, w io.Writer) bool {
	cfg, err := config.Load(getenv)
	results := []Result{Configuration(err)}
	fmt.Fprintln(w, results[0])
	if err != nil {
		return false
	}
	c := &Checker{Cfg: cfg}
	defer c.Close()
	for _, check := range c.checks() {
		r := check(ctx)
		fmt.Fprintln(w, r)
		results = append(results, r)
	}
	return Passed(results)
}

// checks are the checks after the configuration, in report order.
func (c *Checker) checks() []func(context.Context) Result {
	return []func(context.Context) Result{
		c.Database, c.Schema, c.Grants, c.Connection,
		c.ClerkKey, c.Instance, c.Clock, c.WebhookSecret, c.CORS, c.LastWebhook, c.LastReconcile,
	}
}

// Passed reports whether no result failed.
func Passed(results []Result) bool {
	for _, r := range results {
		if r.Status == Fail {
			return false
		}
	}
	return true
}

// Close closes the database if a check opened it.
func (c *Checker) Close() {
	if c.db != nil {
		models.Close(c.db)
		c.db = nil
	}
}

// Configuration reports config.Load's error, which names every bad variable.
func Configuration(err error) Result {
	if err != nil {
		return fail("configuration", "%v (fix the named variables; see README.md, Configuration)", err)
	}
	return ok("configuration", "every variable parses")
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
