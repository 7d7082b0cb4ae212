package config_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
)

const pemKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAmKEg+lQ/Ih3u5YZqzf5W
faZ4gVBLU3Oso3aVSBlYs4cV0r10fEN5g0qzRxUHLfaqoUzSth6GdDLckGqw74UO
I23Fzf3AnrVVoJru2NrmxBjYl/1niiwPAfxNusOxr0WA1dsiKo1uWEAf2xDcELnR
PmEpcRO8OKZJAY86fZF+EzjQGPPfXoCcnWwHZkZIBE6YcutdLvQ85Q3ntPZR0OTL
aIYU+u/avspb9zRHsTvBTySCI1FCIgREtO0G4ggd1qTZT7pa9LaHw+DfE9QwoTiW
pLg2+eUlQWPyDpyJGlakaIE7pxbwTJ5Y68dqurUF3isdNTVMbptrG47Cer8WMs2K
vwIDAQAB
-----END PUBLIC KEY-----`

// ecKey is a valid PEM key of the wrong kind: Clerk signs with RSA.
const ecKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkg9yPboQzXRHln6AXc7jcXBzhU3v
+6/jpL3FQsitsfYzgBqzgEl83qODfE+Fm9+WIlZIWs+7pPIF4aaZP9YXew==
-----END PUBLIC KEY-----`

func load(env map[string]string) (config.Config, error) {
	return config.Load(func(k string) string { return env[k] })
}

func TestLoadDefaults(t *testing.T) {
	got, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		Database:               config.Database{Dialect: models.SQLite, DSN: "usersync.db", MaxConns: 10},
		Port:                   8080,
		ClerkAPIURL:            "https://api.clerk.com",
		SyncFreshness:          5 * time.Minute,
		WebhookEventsRetention: 30 * 24 * time.Hour,
		SyncRateLimit:          config.RateLimit{Requests: 5, Per: time.Minute},
		LogLevel:               slog.LevelInfo,
		LogFormat:              "json",
		ReconcileInterval:      5 * time.Minute,
		FullReconcileInterval:  24 * time.Hour,
		ClerkAPIRate:           config.RateLimit{Requests: 5, Per: time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadValues(t *testing.T) {
	got, err := load(map[string]string{
		"DATABASE_URL":                 "postgresql://u@db.neon.tech/app?sslmode=require",
		"DATABASE_URL_UNPOOLED":        "postgresql://u@db.neon.tech/app?sslmode=require&application_name=migrate",
		"DATABASE_MAX_CONNS":           "4",
		"PORT":                         "9000",
		"CLERK_SECRET_KEY":             "sk_test_x",
		"CLERK_API_URL":                "http://127.0.0.1:9999/",
		"CLERK_JWT_KEY":                strings.ReplaceAll(pemKey, "\n", `\n`),
		"CLERK_AUTHORIZED_PARTIES":     "https://a.example, https://b.example",
		"CLERK_ISSUER":                 "https://clerk.example.com",
		"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_c2Vjb25k",
		"SYNC_FRESHNESS":               "0",
		"WEBHOOK_EVENTS_RETENTION":     "72h",
		"SYNC_RATE_LIMIT":              "10/30s",
		"CLERK_API_RATE":               "20/2s",
		"LOG_LEVEL":                    "debug",
		"LOG_FORMAT":                   "text",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		Database: config.Database{Dialect: models.Postgres, DSN: "postgresql://u@db.neon.tech/app?sslmode=require",
			MigrateDSN: "postgresql://u@db.neon.tech/app?sslmode=require&application_name=migrate", MaxConns: 4},
		Port:                   9000,
		ClerkSecretKey:         "sk_test_x",
		ClerkAPIURL:            "http://127.0.0.1:9999",
		ClerkJWTKey:            pemKey,
		AuthorizedParties:      []string{"https://a.example", "https://b.example"},
		Issuer:                 "https://clerk.example.com",
		WebhookSecrets:         []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25k"},
		SyncFreshness:          0,
		WebhookEventsRetention: 72 * time.Hour,
		SyncRateLimit:          config.RateLimit{Requests: 10, Per: 30 * time.Second},
		CORSAllowedOrigins:     []string{"https://a.example", "https://b.example"},
		LogLevel:               slog.LevelDebug,
		LogFormat:              "text",
		ReconcileInterval:      5 * time.Minute,
		FullReconcileInterval:  24 * time.Hour,
		ClerkAPIRate:           config.RateLimit{Requests: 20, Per: 2 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestLoadSmallCases(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		check func(config.Config) bool
	}{
		{"sqlite URL", map[string]string{"DATABASE_URL": "sqlite:///var/lib/u.db"},
			func(c config.Config) bool {
				return c.Database == config.Database{Dialect: models.SQLite, DSN: "/var/lib/u.db", MaxConns: 10}
			}},
		{"bare path, as the default value reads", map[string]string{"DATABASE_URL": "usersync.db"},
			func(c config.Config) bool { return c.Database.SQLitePath() == "usersync.db" }},
		{"bare absolute path", map[string]string{"DATABASE_URL": "/srv/data/users.db"},
			func(c config.Config) bool { return c.Database.SQLitePath() == "/srv/data/users.db" }},
		{"migrations use the unpooled URL", map[string]string{"DATABASE_URL": "postgres://x@h-pooler/db", "DATABASE_URL_UNPOOLED": "postgres://x@h/db"},
			func(c config.Config) bool { return c.Database.MigrationDSN() == "postgres://x@h/db" }},
		{"migrations use DATABASE_URL without an unpooled one", map[string]string{"DATABASE_URL": "postgres://x@h/db"},
			func(c config.Config) bool { return c.Database.MigrationDSN() == "postgres://x@h/db" }},
		{"file URL", map[string]string{"DATABASE_URL": "file:data/u.db"},
			func(c config.Config) bool { return c.Database.SQLitePath() == "data/u.db" }},
		{"postgres URL", map[string]string{"DATABASE_URL": "postgres://x@h/db"},
			func(c config.Config) bool {
				return c.Database.Dialect == models.Postgres && c.Database.SQLitePath() == ""
			}},
		{"legacy secret name", map[string]string{"CLERK_WEBHOOK_SECRET": "whsec_c2Vjb25k"},
			func(c config.Config) bool { return len(c.WebhookSecrets) == 1 }},
		{"signing secret wins over legacy name", map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_c2Vjb25k", "CLERK_WEBHOOK_SECRET": "bad"},
			func(c config.Config) bool { return len(c.WebhookSecrets) == 1 }},
		{"CORS overrides parties", map[string]string{"CLERK_AUTHORIZED_PARTIES": "https://a", "CORS_ALLOWED_ORIGINS": "https://c"},
			func(c config.Config) bool {
				return len(c.CORSAllowedOrigins) == 1 && c.CORSAllowedOrigins[0] == "https://c"
			}},
		{"no rate limit", map[string]string{"SYNC_RATE_LIMIT": "0"},
			func(c config.Config) bool { return c.SyncRateLimit == config.RateLimit{} }},
		{"freshness duration", map[string]string{"SYNC_FRESHNESS": "90s"},
			func(c config.Config) bool { return c.SyncFreshness == 90*time.Second }},
		{"retention default 30 days", map[string]string{},
			func(c config.Config) bool { return c.WebhookEventsRetention == 720*time.Hour }},
		{"retention 48h", map[string]string{"WEBHOOK_EVENTS_RETENTION": "48h"},
			func(c config.Config) bool { return c.WebhookEventsRetention == 48*time.Hour }},
		{"retention 0 keeps forever", map[string]string{"WEBHOOK_EVENTS_RETENTION": "0"},
			func(c config.Config) bool { return c.WebhookEventsRetention == 0 }},
		{"issuer's trailing slash trimmed", map[string]string{"CLERK_ISSUER": " https://clerk.example.com/ "},
			func(c config.Config) bool { return c.Issuer == "https://clerk.example.com" }},
		{"development issuer", map[string]string{"CLERK_ISSUER": "https://happy-cat-12.clerk.accounts.dev"},
			func(c config.Config) bool { return c.Issuer == "https://happy-cat-12.clerk.accounts.dev" }},
		{"proxied issuer", map[string]string{"CLERK_ISSUER": "https://app.example.com/__clerk"},
			func(c config.Config) bool { return c.Issuer == "https://app.example.com/__clerk" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

// CLERK_API_RATE defaults to half the documented limit of the key's
// instance (production 1,000 per 10 s, development 100); a value that is
// not N/DURATION with N and DURATION positive is an error naming it.
func TestLoadClerkAPIRate(t *testing.T) {
	cases := []struct {
		key, value string
		want       config.RateLimit
		err        string
	}{
		{key: "sk_live_x", want: config.RateLimit{Requests: 50, Per: time.Second}},
		{key: "sk_test_x", want: config.RateLimit{Requests: 5, Per: time.Second}},
		{key: "", want: config.RateLimit{Requests: 5, Per: time.Second}},
		{key: "sk_live_x", value: "1000/10s", want: config.RateLimit{Requests: 1000, Per: 10 * time.Second}},
		{key: "sk_test_x", value: " 1/10s ", want: config.RateLimit{Requests: 1, Per: 10 * time.Second}},
		{key: "sk_live_x", value: "0", err: `CLERK_API_RATE: "0" is not N/DURATION such as 50/1s`},
		{value: "0/1s", err: `CLERK_API_RATE: "0/1s" is not N/DURATION such as 50/1s`},
		{value: "-5/1s", err: `CLERK_API_RATE: "-5/1s" is not N/DURATION such as 50/1s`},
		{value: "50", err: `CLERK_API_RATE: "50" is not N/DURATION such as 50/1s`},
		{value: "50/0s", err: `CLERK_API_RATE: "50/0s" is not N/DURATION such as 50/1s`},
		{value: "50/-1s", err: `CLERK_API_RATE: "50/-1s" is not N/DURATION such as 50/1s`},
		{value: "fifty/1s", err: `CLERK_API_RATE: "fifty/1s" is not N/DURATION such as 50/1s`},
		{value: "50/second", err: `CLERK_API_RATE: "50/second" is not N/DURATION such as 50/1s`},
	}
	for _, tc := range cases {
		t.Run(tc.key+" "+tc.value, func(t *testing.T) {
			c, err := load(map[string]string{"CLERK_SECRET_KEY": tc.key, "CLERK_API_RATE": tc.value})
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("error = %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && c.ClerkAPIRate != tc.want:
				t.Errorf("ClerkAPIRate = %+v, want %+v", c.ClerkAPIRate, tc.want)
			}
		})
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL: unsupported database URL"},
		{map[string]string{"DATABASE_URL": "sqlite://"}, "DATABASE_URL: SQLite URL names no file"},
		{map[string]string{"DATABASE_URL": "postgres://%zz"}, `DATABASE_URL: postgres://%zz is not a valid URL (a password holding / ? # @ or % must be percent-encoded)`},
		{map[string]string{"DATABASE_URL": "postgres://u:s3cret@h:99999/db"}, "DATABASE_URL: postgres://u:xxxxx@h:99999/db is not a valid Postgres URL"},
		{map[string]string{"DATABASE_URL": "host=db user=app"}, "DATABASE_URL: unsupported database URL"},
		{map[string]string{"DATABASE_URL_UNPOOLED": "postgres://x@h/db"}, "DATABASE_URL_UNPOOLED: is set but DATABASE_URL is not a Postgres URL"},
		{map[string]string{"DATABASE_URL": "postgres://x@h/db", "DATABASE_URL_UNPOOLED": "db.sqlite"}, "DATABASE_URL_UNPOOLED: must be a postgres:// URL"},
		{map[string]string{"DATABASE_MAX_CONNS": "0"}, `DATABASE_MAX_CONNS: "0" is not a positive whole number`},
		{map[string]string{"DATABASE_MAX_CONNS": "ten"}, `DATABASE_MAX_CONNS: "ten" is not a positive whole number`},
		{map[string]string{"PORT": "http"}, `PORT: "http" is not a TCP port`},
		{map[string]string{"PORT": "70000"}, `PORT: "70000" is not a TCP port`},
		{map[string]string{"CLERK_API_URL": "api.clerk.com"}, "CLERK_API_URL:"},
		{map[string]string{"CLERK_ISSUER": "clerk.example.com"}, `CLERK_ISSUER: "clerk.example.com" is not a URL such as https://clerk.example.com`},
		{map[string]string{"CLERK_ISSUER": "ftp://clerk.example.com"}, `CLERK_ISSUER: "ftp://clerk.example.com" is not a URL`},
		{map[string]string{"CLERK_ISSUER": "https://"}, `CLERK_ISSUER: "https://" is not a URL`},
		{map[string]string{"CLERK_ISSUER": "https://clerk.example.com?x=1"}, `CLERK_ISSUER: "https://clerk.example.com?x=1" is not a URL`},
		{map[string]string{"CLERK_ISSUER": "https://%zz"}, `CLERK_ISSUER: "https://%zz" is not a URL`},
		{map[string]string{"CLERK_JWT_KEY": "not pem"}, "CLERK_JWT_KEY: not a PEM public key"},
		{map[string]string{"CLERK_JWT_KEY": ecKey}, "CLERK_JWT_KEY: not an RSA public key"},
		{map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_"}, "CLERK_WEBHOOK_SIGNING_SECRET: secret 1 of 1: must be"},
		{map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, `secret 1 of 1: must start with "whsec_"`},
		{map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_c2Vjb25k,whsec_!!!"}, "CLERK_WEBHOOK_SIGNING_SECRET: secret 2 of 2"},
		{map[string]string{"CLERK_WEBHOOK_SECRET": "nope"}, "CLERK_WEBHOOK_SECRET: secret 1 of 1"},
		{map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": " , "}, "CLERK_WEBHOOK_SIGNING_SECRET: is set but holds no secret"},
		{map[string]string{"SYNC_FRESHNESS": "5 minutes"}, "SYNC_FRESHNESS:"},
		{map[string]string{"SYNC_FRESHNESS": "-1m"}, "SYNC_FRESHNESS:"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL:"},
		{map[string]string{"SYNC_RATE_LIMIT": "5"}, "SYNC_RATE_LIMIT:"},
		{map[string]string{"SYNC_RATE_LIMIT": "0/1m"}, "SYNC_RATE_LIMIT:"},
		{map[string]string{"SYNC_RATE_LIMIT": "5/soon"}, "SYNC_RATE_LIMIT:"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT:"},
		{map[string]string{"WEBHOOK_EVENTS_RETENTION": "47h"}, `WEBHOOK_EVENTS_RETENTION: "47h" is shorter than 48h`},
		{map[string]string{"WEBHOOK_EVENTS_RETENTION": "30 days"}, "WEBHOOK_EVENTS_RETENTION:"},
	}
	for _, tc := range cases {
		_, err := load(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) error = %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	_, err := load(map[string]string{"PORT": "x", "LOG_LEVEL": "y", "DATABASE_URL": "z://"})
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans lines; the contract asks for one", err)
	}
	for _, name := range []string{"PORT", "LOG_LEVEL", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestSecretNeverInError(t *testing.T) {
	secret := "whsec_notbase64!!secretmaterial"
	_, err := load(map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": secret})
	if err == nil || strings.Contains(err.Error(), "secretmaterial") {
		t.Errorf("error = %v; must exist and not contain the secret", err)
	}
}

// variables are every environment variable Load reads.
var variables = []string{
	"DATABASE_URL", "DATABASE_URL_UNPOOLED", "DATABASE_MAX_CONNS", "PORT", "CLERK_SECRET_KEY", "CLERK_API_URL", "CLERK_JWT_KEY",
	"CLERK_AUTHORIZED_PARTIES", "CLERK_ISSUER", "CLERK_WEBHOOK_SIGNING_SECRET", "CLERK_WEBHOOK_SECRET",
	"SYNC_FRESHNESS", "SYNC_RATE_LIMIT", "CORS_ALLOWED_ORIGINS", "LOG_LEVEL", "LOG_FORMAT",
	"WEBHOOK_EVENTS_RETENTION", "SYNC_RECONCILE_INTERVAL", "SYNC_FULL_RECONCILE_INTERVAL", "CLERK_API_RATE",
}

// Load reads exactly the listed variables, and the operator's files name
// every one of them.
func TestVariablesAreDocumented(t *testing.T) {
	read := map[string]bool{}
	config.Load(func(k string) string { read[k] = true; return "" })
	for _, v := range variables {
		if !read[v] {
			t.Errorf("%s is listed but Load does not read it", v)
		}
		delete(read, v)
	}
	for v := range read {
		t.Errorf("Load reads %s, which the test's variables list does not name", v)
	}
	for _, file := range []string{"../.env.example", "../README.md", "../docker-compose.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range variables {
			if v == "CLERK_WEBHOOK_SECRET" && file != "../README.md" {
				continue // the legacy name is documented, not advertised
			}
			if !strings.Contains(string(b), v) {
				t.Errorf("%s does not mention %s", file, v)
			}
		}
	}
}

// Origins are exact: a browser's Origin is compared byte for byte, so a
// pattern, a path or a missing scheme is refused naming the variable, and a
// trailing slash is trimmed rather than silently never matching.
func TestLoadOrigins(t *testing.T) {
	got, err := load(map[string]string{
		"CLERK_AUTHORIZED_PARTIES": "https://App.Example.com/ http://localhost:3000",
		"CORS_ALLOWED_ORIGINS":     "https://app.example.com:443/, http://[::1]:3000",
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"https://app.example.com", "http://localhost:3000"}, got.AuthorizedParties); diff != "" {
		t.Errorf("CLERK_AUTHORIZED_PARTIES (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"https://app.example.com", "http://[::1]:3000"}, got.CORSAllowedOrigins); diff != "" {
		t.Errorf("CORS_ALLOWED_ORIGINS (-want +got):\n%s", diff)
	}
	for _, name := range []string{"CORS_ALLOWED_ORIGINS", "CLERK_AUTHORIZED_PARTIES"} {
		for _, bad := range []string{"*", "https://*.vercel.app", "http://localhost:*", "app.example.com",
			"localhost:3000", "https://app.example.com/path", "ftp://app.example.com", "https://u:p@app.example.com",
			"https://app.example.com?x=1", "https://", "https://app.example.com:"} {
			_, err := load(map[string]string{name: "https://ok.example " + bad})
			if err == nil || !strings.HasPrefix(err.Error(), name+": ") || !strings.Contains(err.Error(), bad) {
				t.Errorf("%s=%q: err = %v, want an error naming the variable and the value", name, bad, err)
			}
		}
	}
}

// MaskURL is how every URL is printed. Each password shape of the security
// review: the secret is nowhere in the output, and the host still is.
func TestMaskURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres:SECRET1/SECRET2@127.0.0.1:5432/app", "postgres://postgres:xxxxx@127.0.0.1:5432/app"},
		{"postgres://postgres:SECRET1#SECRET2@127.0.0.1/app", "postgres://postgres:xxxxx@127.0.0.1/app"},
		{"postgres://postgres:SECRET1?SECRET2@127.0.0.1/app", "postgres://postgres:xxxxx@127.0.0.1/app"},
		{"postgres://postgres:SECRET1@SECRET2@127.0.0.1/app", "postgres://postgres:xxxxx@127.0.0.1/app"},
		{"postgres://postgres@127.0.0.1/app?password=QSECRET&sslmode=bogus", "postgres://postgres@127.0.0.1/app?password=xxxxx&sslmode=bogus"},
		{"postgresql://u@127.0.0.1/app?sslmode=require&sslpassword=SECRET", "postgresql://u@127.0.0.1/app?sslmode=require&sslpassword=xxxxx"},
		{"postgres://u@127.0.0.1/app?pass%77ord=SECRET#frag", "postgres://u@127.0.0.1/app?pass%77ord=xxxxx#frag"},
		{"postgres://u:SECRET@127.0.0.1/app", "postgres://u:xxxxx@127.0.0.1/app"},
		{"http://apiuser:SECRET@127.0.0.1:8080", "http://xxxxx@127.0.0.1:8080"},
		{"https://SECRET@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		{"https://api.clerk.com", "https://api.clerk.com"},
		{"usersync.db", "usersync.db"},
	} {
		got := config.MaskURL(tc.in)
		if got != tc.want || strings.Contains(got, "SECRET") {
			t.Errorf("MaskURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A DATABASE_URL that does not parse is named in the error, masked.
func TestLoadErrorsHideDatabasePasswords(t *testing.T) {
	for _, dsn := range []string{
		"postgres://postgres:SECRET1/SECRET2@127.0.0.1:5432/app",
		"postgres://postgres:SECRET1#SECRET2@127.0.0.1/app",
		"postgres://postgres:SECRET1?SECRET2@127.0.0.1/app",
		"postgres://postgres:SECRET1@SECRET2@127.0.0.1/app",
		"postgres://postgres@127.0.0.1/app?password=QSECRET&sslmode=bogus",
	} {
		_, err := config.Load(func(k string) string { return map[string]string{"DATABASE_URL": dsn}[k] })
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "DATABASE_URL: postgres://postgres") {
			t.Errorf("Load(%q) error = %v, want one naming DATABASE_URL without the secret", dsn, err)
		}
	}
}
