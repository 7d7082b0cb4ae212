// Package config reads usersync's configuration from the environment.
package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersync/usersync/models"
)

// Defaults, in one place.
const (
	DefaultSQLitePath    = "usersync.db"
	DefaultPort          = 8080
	DefaultClerkAPIURL   = "https://api.clerk.com"
	DefaultSyncFreshness = 5 * time.Minute
	DefaultMaxConns      = 10

	// DefaultReconcileInterval and DefaultFullReconcileInterval space the
	// incremental and the full reconcile passes.
	DefaultReconcileInterval     = 5 * time.Minute
	DefaultFullReconcileInterval = 24 * time.Hour
	// DefaultWebhookEventsRetention keeps webhook_events rows for 30 days.
	DefaultWebhookEventsRetention = 30 * 24 * time.Hour
	// MinWebhookEventsRetention is Svix's retry window: a row younger than
	// this may still de-duplicate a redelivery, so none is ever deleted.
	MinWebhookEventsRetention = 48 * time.Hour
)

// Config is the whole configuration of one usersync process.
type Config struct {
	Database Database
	Port     int

	ClerkSecretKey    string
	ClerkAPIURL       string // without a trailing slash
	ClerkJWTKey       string // PEM public key; empty means fetch the JWKS
	AuthorizedParties []string
	Issuer            string

	// WebhookSecrets are the whsec_ signing secrets; empty means none was
	// configured and a development secret is used.
	WebhookSecrets []string

	SyncFreshness      time.Duration
	SyncRateLimit      RateLimit
	CORSAllowedOrigins []string

	LogLevel  slog.Level
	LogFormat string // "json" or "text"

	// WebhookEventsRetention is how long webhook_events rows are kept; 0
	// keeps them forever.
	WebhookEventsRetention time.Duration

	// ReconcileInterval is SYNC_RECONCILE_INTERVAL, the time between
	// incremental reconcile passes, and FullReconcileInterval the time
	// between full ones; 0 turns each off.
	ReconcileInterval     time.Duration
	FullReconcileInterval time.Duration
	// ClerkAPIRate is CLERK_API_RATE: the Backend API requests one process
	// may send, shared by login sync, reconcile and backfill.
	ClerkAPIRate RateLimit
}

// RateLimit is SYNC_RATE_LIMIT: Requests per Per for each user, all of them
// allowed at once as a burst. Requests == 0 means no limit.
type RateLimit struct {
	Requests int
	Per      time.Duration
}

// DefaultSyncRateLimit allows a burst of 5 login syncs per user, refilled
// over a minute: a frontend calls once per session.
var DefaultSyncRateLimit = RateLimit{Requests: 5, Per: time.Minute}

// Database says which database to open.
type Database struct {
	Dialect models.Dialect
	// DSN is the Postgres URL, or the SQLite file path.
	DSN string
	// MigrateDSN is DATABASE_URL_UNPOOLED: a direct connection to the same
	// Postgres database for migrations; empty means migrate through DSN.
	MigrateDSN string
	// MaxConns bounds the connections one process opens (Postgres).
	MaxConns int
}

// MigrationDSN is where migrations run: the unpooled URL when there is one.
func (d Database) MigrationDSN() string {
	if d.MigrateDSN != "" {
		return d.MigrateDSN
	}
	return d.DSN
}

// SQLitePath is the database file for SQLite, "" for Postgres.
func (d Database) SQLitePath() string {
	if d.Dialect == models.SQLite {
		return d.DSN
	}
	return ""
}

// Load reads the configuration through getenv (os.Getenv, or a lookup that
// also sees .env). Every problem is reported, each naming its variable.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		Database:          p.database(),
		Port:              p.port("PORT"),
		ClerkSecretKey:    getenv("CLERK_SECRET_KEY"),
		ClerkAPIURL:       p.baseURL("CLERK_API_URL", DefaultClerkAPIURL),
		ClerkJWTKey:       p.pemKey("CLERK_JWT_KEY"),
		AuthorizedParties: p.origins("CLERK_AUTHORIZED_PARTIES"),
		Issuer:            p.issuer("CLERK_ISSUER"),
		WebhookSecrets:    p.webhookSecrets(),
		SyncFreshness:     p.duration("SYNC_FRESHNESS", DefaultSyncFreshness),
		SyncRateLimit:     p.rateLimit("SYNC_RATE_LIMIT"),
		LogLevel:          p.logLevel("LOG_LEVEL"),
		LogFormat:         p.oneOf("LOG_FORMAT", "json", "json", "text"),
	}
	c.WebhookEventsRetention = p.retention("WEBHOOK_EVENTS_RETENTION")
	c.ReconcileInterval = p.duration("SYNC_RECONCILE_INTERVAL", DefaultReconcileInterval)
	c.FullReconcileInterval = p.duration("SYNC_FULL_RECONCILE_INTERVAL", DefaultFullReconcileInterval)
	c.ClerkAPIRate = p.clerkAPIRate("CLERK_API_RATE", c.ClerkSecretKey)
	c.CORSAllowedOrigins = c.AuthorizedParties
	if getenv("CORS_ALLOWED_ORIGINS") != "" {
		c.CORSAllowedOrigins = p.origins("CORS_ALLOWED_ORIGINS")
	}
	return c, p.err()
}

// parser collects one error per bad variable.
type parser struct {
	getenv func(string) string
	errs   []error
}

// err is every problem on one line, so the operator sees them all at once.
func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(p.errs))
	for i, e := range p.errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (p *parser) fail(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
}

// database reads DATABASE_URL, DATABASE_URL_UNPOOLED and DATABASE_MAX_CONNS.
func (p *parser) database() Database {
	d := p.databaseURL("DATABASE_URL")
	d.MaxConns = p.positiveInt("DATABASE_MAX_CONNS", DefaultMaxConns)
	if strings.TrimSpace(p.getenv("DATABASE_URL_UNPOOLED")) == "" {
		return d
	}
	switch direct := p.databaseURL("DATABASE_URL_UNPOOLED"); {
	case direct.Dialect == "": // reported by databaseURL
	case direct.Dialect != models.Postgres:
		p.fail("DATABASE_URL_UNPOOLED", "must be a postgres:// URL (a direct connection for migrations)")
	case d.Dialect == models.SQLite:
		p.fail("DATABASE_URL_UNPOOLED", "is set but DATABASE_URL is not a Postgres URL")
	default:
		d.MigrateDSN = direct.DSN
	}
	return d
}

// databaseURL reads a database location: a Postgres URL, a sqlite:// or
// file: URL, or a bare file path (the default, usersync.db, is one).
func (p *parser) databaseURL(name string) Database {
	v := strings.TrimSpace(p.getenv(name))
	switch {
	case v == "":
		return Database{Dialect: models.SQLite, DSN: DefaultSQLitePath}
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		// Two '@': the driver would read the part of a password after the
		// first as the host name, and print it in its errors.
		if _, err := url.Parse(v); err != nil || strings.Count(v, "@") > 1 {
			// url.Parse's text may quote part of a password (an "invalid
			// port" that is the part after ':' and before a '/').
			p.fail(name, "%s is not a valid URL (a password holding / ? # @ or %% must be percent-encoded)", MaskURL(v))
			return Database{}
		}
		if _, err := pgconn.ParseConfig(v); err != nil {
			p.fail(name, "%s is not a valid Postgres URL", MaskURL(v))
			return Database{}
		}
		return Database{Dialect: models.Postgres, DSN: v}
	case strings.HasPrefix(v, "sqlite://"):
		return p.sqlitePath(name, strings.TrimPrefix(v, "sqlite://"))
	case strings.HasPrefix(v, "file:"):
		return p.sqlitePath(name, strings.TrimPrefix(v, "file:"))
	case strings.Contains(v, "://"), strings.Contains(v, "="):
		p.fail(name, "unsupported database URL; use postgres://…, postgresql://…, sqlite://PATH, file:PATH or a file path")
		return Database{}
	}
	return Database{Dialect: models.SQLite, DSN: v} // a bare path such as usersync.db
}

// MaskURL is how every URL is printed (configuration errors, the start-up
// log, check): it hides a password, a user information that may be a key,
// and query parameters that may carry secrets. It does not use url.Parse,
// which ends the user information at a '/', '?' or '#' inside a password
// and would print the rest. The last '@' ends the user information, so a
// password holding '@' is hidden whole; a '@' elsewhere only hides more.
func MaskURL(v string) string {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return v // a file path: nothing to hide
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, _, hasPassword := strings.Cut(rest[:at], ":")
		// A database role name helps the operator and is no secret; in other
		// URLs a user name alone may be an API key.
		switch {
		case isPostgres(scheme) && strings.ContainsAny(user, "/?#"):
			rest = "xxxxx" + rest[at:]
		case isPostgres(scheme) && hasPassword:
			rest = user + ":xxxxx" + rest[at:]
		case isPostgres(scheme):
			rest = user + rest[at:]
		default:
			rest = "xxxxx" + rest[at:]
		}
	}
	return scheme + "://" + maskQuery(rest)
}

func isPostgres(scheme string) bool {
	return strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql")
}

// maskQuery hides the values of query parameters whose (decoded) names
// suggest a secret: password, sslpassword, token, key, secret.
func maskQuery(rest string) string {
	head, query, ok := strings.Cut(rest, "?")
	if !ok {
		return rest
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		name, _, hasValue := strings.Cut(p, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		decoded = strings.ToLower(decoded)
		if hasValue && (strings.Contains(decoded, "pass") || strings.Contains(decoded, "secret") ||
			strings.Contains(decoded, "token") || strings.Contains(decoded, "key")) {
			params[i] = name + "=xxxxx"
		}
	}
	out := head + "?" + strings.Join(params, "&")
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

func (p *parser) sqlitePath(name, path string) Database {
	if path == "" {
		p.fail(name, "SQLite URL names no file")
	}
	return Database{Dialect: models.SQLite, DSN: path}
}

// origins reads a list of exact origins, scheme://host[:port]. A trailing
// "/" is trimmed; anything else (a pattern, a path, no scheme) is an error,
// because a browser's Origin is compared with each entry byte for byte and
// a mistake would either silently break CORS or, as a pattern, let other
// sites read a signed-in user's data.
func (p *parser) origins(name string) []string {
	var out []string
	for _, v := range list(p.getenv(name)) {
		o, err := Origin(v)
		if err != nil {
			p.fail(name, "%q %v", v, err)
			continue
		}
		out = append(out, o)
	}
	return out
}

// Origin checks one origin and returns it in the form browsers send:
// lower-case scheme and host, no trailing slash, no default port.
func Origin(v string) (string, error) {
	trimmed := strings.TrimSuffix(v, "/")
	if strings.ContainsAny(trimmed, "*?#") {
		return "", errors.New("is a pattern; list each origin exactly, such as https://app.example.com")
	}
	u, err := url.Parse(trimmed)
	switch {
	case err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return "", errors.New("is not an origin scheme://host[:port], such as https://app.example.com")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("must start with http:// or https://")
	case u.User != nil || u.Path != "" || u.RawQuery != "":
		return "", errors.New("must be only scheme://host[:port], without user, path or query")
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", errors.New("has an empty port")
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return u.Scheme + "://" + host, nil
}

func (p *parser) port(name string) int {
	v := p.getenv(name)
	if v == "" {
		return DefaultPort
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		p.fail(name, "%q is not a TCP port (1-65535)", v)
	}
	return n
}

func (p *parser) positiveInt(name string, def int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		p.fail(name, "%q is not a positive whole number", v)
		return def
	}
	return n
}

func (p *parser) baseURL(name, def string) string {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, "is not an http(s) URL such as https://api.clerk.com") // the value may hold credentials
	}
	return strings.TrimRight(v, "/")
}

// issuer reads the exact iss session tokens must carry: the instance's
// Frontend API URL (https://clerk.example.com), or its proxy URL, which may
// have a path. A trailing "/" is trimmed, as a token's iss has none and the
// comparison is exact; anything but an http(s) URL of a host is an error,
// rather than a value no token could match.
func (p *parser) issuer(name string) string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return ""
	}
	trimmed := strings.TrimSuffix(v, "/")
	u, err := url.Parse(trimmed)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(trimmed, "?") || strings.HasSuffix(trimmed, "#") {
		p.fail(name, "%q is not a URL such as https://clerk.example.com (your instance's Frontend API URL, the iss of its session tokens)", v)
		return ""
	}
	return trimmed
}

func (p *parser) pemKey(name string) string {
	v := p.getenv(name)
	if v == "" {
		return ""
	}
	// Some hosts cannot hold newlines in a variable; accept them escaped.
	v = strings.ReplaceAll(v, `\n`, "\n")
	block, _ := pem.Decode([]byte(v))
	if block == nil {
		p.fail(name, "not a PEM public key")
		return ""
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		p.fail(name, "not a PEM public key: %v", err)
		return ""
	}
	if _, ok := key.(*rsa.PublicKey); !ok {
		p.fail(name, "not an RSA public key (Clerk signs session tokens with RS256)")
		return ""
	}
	return v
}

// webhookSecrets reads CLERK_WEBHOOK_SIGNING_SECRET (or the older
// CLERK_WEBHOOK_SECRET): one or more whsec_ secrets, for rotation. A secret
// that does not decode is an error, never an empty key. Error messages never
// repeat the secret.
func (p *parser) webhookSecrets() []string {
	name := "CLERK_WEBHOOK_SIGNING_SECRET"
	v := p.getenv(name)
	if v == "" {
		name = "CLERK_WEBHOOK_SECRET"
		v = p.getenv(name)
	}
	secrets := list(v)
	if v != "" && len(secrets) == 0 {
		p.fail(name, "is set but holds no secret")
	}
	for i, s := range secrets {
		if err := CheckWebhookSecret(s); err != nil {
			p.fail(name, "secret %d of %d: %v", i+1, len(secrets), err)
		}
	}
	return secrets
}

// CheckWebhookSecret reports whether s is "whsec_" followed by a non-empty
// standard base64 key, the form Clerk's dashboard shows.
func CheckWebhookSecret(s string) error {
	key, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return errors.New(`must start with "whsec_"`)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) == 0 {
		return errors.New(`must be "whsec_" followed by a base64 key`)
	}
	return nil
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	if v == "0" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, "%q is not a duration such as 5m, 90s or 0", v)
	}
	return d
}

// retention reads WEBHOOK_EVENTS_RETENTION: a duration of at least
// MinWebhookEventsRetention, or 0 to keep rows forever.
func (p *parser) retention(name string) time.Duration {
	if p.getenv(name) == "" {
		return DefaultWebhookEventsRetention
	}
	d := p.duration(name, DefaultWebhookEventsRetention)
	if d > 0 && d < MinWebhookEventsRetention {
		p.fail(name, "%q is shorter than 48h, Svix's retry window (redeliveries must still be recognised); use 48h or more, or 0 to keep rows forever", p.getenv(name))
	}
	return d
}

// clerkAPIRate reads CLERK_API_RATE, "N/DURATION"; the default is half
// the documented limit of the key's instance: 1,000 requests per 10 s for
// production (sk_live_), 100 per 10 s otherwise.
func (p *parser) clerkAPIRate(name, secretKey string) RateLimit {
	def := RateLimit{Requests: 5, Per: time.Second}
	if strings.HasPrefix(secretKey, "sk_live_") {
		def = RateLimit{Requests: 50, Per: time.Second}
	}
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, per, ok := strings.Cut(v, "/")
	count, err1 := strconv.Atoi(n)
	d, err2 := time.ParseDuration(per)
	if !ok || err1 != nil || err2 != nil || count < 1 || d <= 0 {
		p.fail(name, "%q is not N/DURATION such as 50/1s", v)
		return def
	}
	return RateLimit{Requests: count, Per: d}
}

// rateLimit reads "N/DURATION" (5/1m: five per minute) or "0" for none.
func (p *parser) rateLimit(name string) RateLimit {
	v := strings.TrimSpace(p.getenv(name))
	switch v {
	case "":
		return DefaultSyncRateLimit
	case "0":
		return RateLimit{}
	}
	n, per, ok := strings.Cut(v, "/")
	count, err1 := strconv.Atoi(n)
	d, err2 := time.ParseDuration(per)
	if !ok || err1 != nil || err2 != nil || count < 1 || d <= 0 {
		p.fail(name, "%q is not N/DURATION such as 5/1m, or 0 for no limit", v)
		return DefaultSyncRateLimit
	}
	return RateLimit{Requests: count, Per: d}
}

func (p *parser) logLevel(name string) slog.Level {
	var l slog.Level
	v := p.getenv(name)
	if v == "" {
		return slog.LevelInfo
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, "%q is not one of debug, info, warn, error", v)
	}
	return l
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.getenv(name))
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// list splits a comma- or space-separated value, dropping empty items.
func list(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}
