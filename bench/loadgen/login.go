package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/usersync/usersync/clerkapi/clerktest"
)

type loginGen struct {
	url, clerkAddr, keyFile string
	users                   int
	fake                    *clerktest.Fake
}

func loginFlags(fs *flag.FlagSet) *loginGen {
	g := &loginGen{}
	fs.StringVar(&g.url, "url", "http://localhost:8080/api/user/sync", "login sync endpoint")
	fs.StringVar(&g.clerkAddr, "clerk-addr", "127.0.0.1:9911", "where to serve the fake Clerk Backend API the service calls")
	fs.IntVar(&g.users, "users", 1000, "distinct users (one session token each)")
	fs.StringVar(&g.keyFile, "key", "", "PEM file of the fake Clerk's RSA signing key, made if missing (default: a new key "+
		"per run); give runs against one service the same file, as the service caches the first run's JWKS")
	return g
}

// requests serves a fake Clerk with the users, mints one session token per
// user with its key, and cycles through them.
func (g *loginGen) requests() (request, error) {
	key, err := signingKey(g.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-key: %w", err)
	}
	fake, err := clerktest.StartWithKey(g.clerkAddr, key)
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

// signingKey reads the fake Clerk's RSA key from path, making it there
// (readable by its owner only) when the file does not exist; with no path it
// makes one for this run. The load tool never signs with the tests'
// committed key.
func signingKey(path string) (*rsa.PrivateKey, error) {
	if path == "" {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an RSA key", path)
	}
	return key, nil
}

// newKeyFile makes an RSA key and writes it to path as PKCS #8 PEM.
func newKeyFile(path string) (*rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return key, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
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
