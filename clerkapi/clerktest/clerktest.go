// Package clerktest is a local stand-in for Clerk's Backend API (an HTTP
// server answering Clerk's JSON shapes and error bodies) plus a
// session-token minter, so tests and the load tool drive the real
// clerk-sdk-go client.
package clerktest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/usersync/usersync/clerkapi"
)

// SecretKey is the Backend API key the fake accepts.
const SecretKey = "sk_test_usersync_fake"

// Issuer is the iss of tokens minted by Claims.
const Issuer = "https://clerk.usersync.test"

// KeyID is the kid of the fake instance's signing key.
const KeyID = "ins_fake_key_1"

// Fake is a fake Clerk Backend API.
type Fake struct {
	URL string // base URL, without /v1: what CLERK_API_URL holds
	Key *rsa.PrivateKey
	srv *http.Server

	mu                    sync.Mutex
	users                 map[string]json.RawMessage
	order                 []string // creation order, for listing
	hidden                map[string]bool
	hits                  map[string]int
	failures              map[string][]Failure
	clockOff              time.Duration
	latency               time.Duration // added to every answer, as the internet would
	limit                 int           // requests allowed per limitPer; 0: no limit
	limitPer              time.Duration
	window                []time.Time // when the requests inside the current limitPer arrived
	limited               int         // requests answered 429 by the rate limit
	inFlight, maxInFlight int
	keyIDs                []string // the kids the JWKS lists; [KeyID] unless set

	orgs     map[string]map[string]any // organization objects by id
	orgOrder []string
	mems     map[string]map[string]any // membership objects without their organization
	memOrder []string
}

// Failure is a canned answer for one call of an operation: an error status
// (with Retry-After for 429), or Status 0 to answer normally, after Delay.
type Failure struct {
	Status     int
	RetryAfter string
	Delay      time.Duration
}

// Operations the fake counts and can fail.
const (
	OpJWKS       = "jwks"
	OpGetUser    = "get_user"
	OpListUsers  = "list_users"
	OpCountUsers = "count_users"

	OpListOrganizations   = "list_organizations"
	OpGetOrganization     = "get_organization"
	OpListMemberships     = "list_memberships"
	OpListUserMemberships = "list_user_memberships"
)

// testKeyPEM is the fake instance's signing key for tests. It signs
// nothing real; the load tool brings its own key (StartWithKey).
//
//go:embed testkey.pem
var testKeyPEM []byte

// TestKey is the fake instance's RSA signing key.
func TestKey() *rsa.PrivateKey {
	block, _ := pem.Decode(testKeyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		panic(err)
	}
	return key.(*rsa.PrivateKey)
}

// NewKey makes a fresh RSA key (for "signed by another key" cases).
func NewKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// New starts a fake Clerk Backend API, closed when the test ends.
func New(t testing.TB) *Fake {
	f, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Start serves a fake Clerk Backend API on addr, signing with TestKey.
func Start(addr string) (*Fake, error) {
	return StartWithKey(addr, TestKey())
}

// StartWithKey serves a fake Clerk Backend API on addr whose instance signs
// with key: the load tool's login mode runs one for a service under test,
// with a key of its own rather than the committed TestKey.
func StartWithKey(addr string, key *rsa.PrivateKey) (*Fake, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &Fake{
		Key:      key,
		users:    map[string]json.RawMessage{},
		hidden:   map[string]bool{},
		hits:     map[string]int{},
		failures: map[string][]Failure{},
		orgs:     map[string]map[string]any{},
		mems:     map[string]map[string]any{},
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 5 * time.Second}
	go f.srv.Serve(ln)
	f.URL = "http://" + ln.Addr().String()
	return f, nil
}

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// PutUser stores a Clerk user object (as User builds, or any JSON object).
func (f *Fake) PutUser(u map[string]any) {
	b, err := json.Marshal(u)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	put(f.users, &f.order, u["id"].(string), b)
}

// put stores v under id, keeping order as the order ids were first stored
// in (listings answer in it, as Clerk's do).
func put[T any](m map[string]T, order *[]string, id string, v T) {
	if _, ok := m[id]; !ok {
		*order = append(*order, id)
	}
	m[id] = v
}

// DeleteUser removes a user, as deleting it in Clerk would.
func (f *Fake) DeleteUser(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.users, id)
}

// HideFromList keeps a user or an organization out of listings while a GET
// of its id still finds it: one created after a listing passed its place.
func (f *Fake) HideFromList(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden[id] = true
}

// FailNext makes the next len(fs) calls of op answer the given failures.
func (f *Fake) FailNext(op string, fs ...Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = append(f.failures[op], fs...)
}

// SetLatency delays every answer by d, as a Clerk across the internet
// would (a few hundred milliseconds a page).
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// SetRateLimit makes the fake answer 429 with Retry-After, as Clerk does,
// to requests beyond n in any window of per.
func (f *Fake) SetRateLimit(n int, per time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit, f.limitPer, f.window = n, per, nil
}

// Concurrency reports the most requests the fake was answering at once,
// and how many it refused with 429 for the rate limit.
func (f *Fake) Concurrency() (maxInFlight, limited int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInFlight, f.limited
}

// overLimit records a request and reports whether it is beyond the rate
// limit, with the whole seconds until a place frees up.
func (f *Fake) overLimit(now time.Time) (bool, int) {
	if f.limit == 0 {
		return false, 0
	}
	for len(f.window) > 0 && now.Sub(f.window[0]) >= f.limitPer {
		f.window = f.window[1:]
	}
	if len(f.window) >= f.limit {
		wait := f.limitPer - now.Sub(f.window[0])
		return true, int((wait + time.Second - 1) / time.Second)
	}
	f.window = append(f.window, now)
	return false, 0
}

// SetClock makes every answer's Date header off by d from this machine's
// clock, as if Clerk's clock (or ours) were wrong.
func (f *Fake) SetClock(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clockOff = d
}

// Hits reports how often op was called.
func (f *Fake) Hits(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[op]
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	w.Header().Set("Date", time.Now().Add(f.clockOff).UTC().Format(http.TimeFormat))
	f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	var op string
	switch {
	case r.Method == http.MethodGet && path == "/jwks":
		op = OpJWKS
	case r.Method == http.MethodGet && path == "/users":
		op = OpListUsers
	case r.Method == http.MethodGet && path == "/users/count":
		op = OpCountUsers
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/users/") && strings.Count(path, "/") == 2:
		op = OpGetUser
	case r.Method == http.MethodGet && path == "/organizations":
		op = OpListOrganizations
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/organizations/") && strings.Count(path, "/") == 2:
		op = OpGetOrganization
	case r.Method == http.MethodGet && path == "/organization_memberships":
		op = OpListMemberships
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/users/") && strings.HasSuffix(path, "/organization_memberships") &&
		strings.Count(path, "/") == 3:
		op = OpListUserMemberships
	default:
		writeError(w, http.StatusNotFound, "resource_not_found", "not found")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+SecretKey {
		writeError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication")
		return
	}
	f.mu.Lock()
	f.hits[op]++
	var fail *Failure
	if q := f.failures[op]; len(q) > 0 {
		fail, f.failures[op] = &q[0], q[1:]
	}
	if over, wait := f.overLimit(time.Now()); over && fail == nil {
		fail = &Failure{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(wait)}
		f.limited++
	}
	latency := f.latency
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil && fail.Delay > 0 {
		select {
		case <-time.After(fail.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil && fail.Status != 0 {
		if fail.RetryAfter != "" {
			w.Header().Set("Retry-After", fail.RetryAfter)
		}
		writeError(w, fail.Status, errorCode(fail.Status), http.StatusText(fail.Status))
		return
	}
	switch op {
	case OpJWKS:
		f.serveJWKS(w)
	case OpGetUser:
		f.serveUser(w, strings.TrimPrefix(path, "/users/"))
	case OpListUsers:
		f.serveList(w, r)
	case OpListOrganizations, OpGetOrganization, OpListMemberships, OpListUserMemberships:
		f.serveOrgs(w, r, op, path)
	case OpCountUsers:
		f.mu.Lock()
		n := len(f.users) - len(f.hidden)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"object": "total_count", "total_count": n})
	}
}

func (f *Fake) serveJWKS(w http.ResponseWriter) {
	f.mu.Lock()
	kids := f.keyIDs
	f.mu.Unlock()
	if kids == nil {
		kids = []string{KeyID}
	}
	set := jose.JSONWebKeySet{}
	for _, kid := range kids {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &f.Key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	writeJSON(w, http.StatusOK, set)
}

// SetKeyIDs makes the JWKS list one key per kid, as the JWKS of another
// instance (Clerk names its keys after their instance) or of several would.
func (f *Fake) SetKeyIDs(kids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyIDs = kids
}

func (f *Fake) serveUser(w http.ResponseWriter, id string) {
	f.mu.Lock()
	u, ok := f.users[id]
	f.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "resource_not_found", "not found")
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// serveList answers GET /v1/users?limit=&offset= with a JSON array in
// creation order, as Clerk does (order_by=created_at), or most recently
// updated first for order_by=-updated_at.
func (f *Fake) serveList(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	order := f.order
	switch by := r.URL.Query().Get("order_by"); by {
	case "", "created_at", "+created_at":
	case "-updated_at":
		order = f.byUpdated()
	default:
		f.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "order_by "+by+" is not supported by the fake")
		return
	}
	page := []json.RawMessage{}
	for _, id := range order {
		u, ok := f.users[id]
		if !ok || f.hidden[id] {
			continue
		}
		if offset > 0 {
			offset--
			continue
		}
		if len(page) == limit {
			break
		}
		page = append(page, u)
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, page)
}

// byUpdated lists the users' ids most recently updated first; equal
// updated_at values keep creation order. Called with f.mu held.
func (f *Fake) byUpdated() []string {
	type entry struct {
		id string
		at int64
	}
	var es []entry
	for _, id := range f.order {
		if u, ok := f.users[id]; ok {
			var v struct {
				UpdatedAt int64 `json:"updated_at"`
			}
			json.Unmarshal(u, &v)
			es = append(es, entry{id, v.UpdatedAt})
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].at > es[j].at })
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.id
	}
	return ids
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers in Clerk's error shape.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{
		"errors":         []map[string]string{{"code": code, "message": message, "long_message": message}},
		"clerk_trace_id": "trace_fake",
	})
}

func errorCode(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusNotFound:
		return "resource_not_found"
	}
	return "internal_clerk_error"
}

// PublicKeyPEM is the fake instance's key as CLERK_JWT_KEY holds it.
func (f *Fake) PublicKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(&f.Key.PublicKey)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Claims are Clerk-shaped session claims for sub, valid for a minute.
func Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"sub": sub, "iss": Issuer, "sid": "sess_fake", "azp": "http://localhost:3000",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Minute).Unix(), "v": 2,
	}
}

// Token signs claims with the fake instance's key.
func (f *Fake) Token(claims map[string]any) string { return Sign(f.Key, KeyID, claims) }

// Sign makes an RS256 token with any key and kid.
func Sign(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		panic(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		panic(err)
	}
	return tok
}

// User builds a Clerk user object (clerkapi.NewUser, named Ada Lovelace);
// fields override or add to it.
func User(id string, updatedAt int64, email string, fields map[string]any) map[string]any {
	u := clerkapi.NewUser(id, updatedAt, email)
	u.FirstName, u.LastName = clerk.String("Ada"), clerk.String("Lovelace")
	return objectMap(u, fields)
}

// objectMap is v, a Clerk object of the SDK's types, as a map a test can
// change, with fields overriding or added.
func objectMap(v any, fields map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers encode again as they are
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	for k, v := range fields {
		m[k] = v
	}
	return m
}
