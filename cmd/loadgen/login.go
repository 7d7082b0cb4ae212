package main

import (
	"flag"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/usersync/usersync/clerkapi/clerktest"
)

type loginGen struct {
	url, clerkAddr string
	users          int
	fake           *clerktest.Fake
}

func loginFlags(fs *flag.FlagSet) *loginGen {
	g := &loginGen{}
	fs.StringVar(&g.url, "url", "http://localhost:8080/api/user/sync", "login sync endpoint")
	fs.StringVar(&g.clerkAddr, "clerk-addr", "127.0.0.1:9911", "where to serve the fake Clerk Backend API the service calls")
	fs.IntVar(&g.users, "users", 1000, "distinct users (one session token each)")
	return g
}

// requests serves a fake Clerk with the users, mints one session token per
// user with its key, and cycles through them.
func (g *loginGen) requests() (request, error) {
	fake, err := clerktest.Start(g.clerkAddr)
	if err != nil {
		return nil, fmt.Errorf("-clerk-addr: %w", err)
	}
	g.fake = fake
	tokens := make([]string, g.users)
	for i := range g.users {
		id := fmt.Sprintf("user_2login%08d", i)
		fake.PutUser(clerktest.User(id, 1700000000000, fmt.Sprintf("login%08d@example.com", i), nil))
		claims := clerktest.Claims(id)
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		tokens[i] = fake.Token(claims)
	}
	var n atomic.Int64
	return func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, g.url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tokens[int(n.Add(1))%len(tokens)])
		return req, nil
	}, nil
}

func (g *loginGen) close() {
	if g.fake != nil {
		g.fake.Close()
	}
}

type getGen struct{ url string }

func getFlags(fs *flag.FlagSet) *getGen {
	g := &getGen{}
	fs.StringVar(&g.url, "url", "http://localhost:8080/healthz", "URL to GET")
	return g
}

func (g *getGen) requests() (request, error) {
	return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, g.url, nil) }, nil
}
