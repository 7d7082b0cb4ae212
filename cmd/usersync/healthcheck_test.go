package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" for exit 0
		usage   bool
	}{
		{name: "default URL from PORT", env: map[string]string{"PORT": u.Port()}},
		{name: "--url answering 200", args: []string{"--url", srv.URL + "/healthz"}},
		{name: "not 200", args: []string{"--url", srv.URL + "/readyz"}, wantErr: "503"},
		{name: "nothing listening", args: []string{"--url", closed.URL + "/healthz"}, wantErr: "healthcheck:"},
		{name: "bad PORT", env: map[string]string{"PORT": "http"}, wantErr: "PORT", usage: true},
		{name: "bad flag", args: []string{"--port", "1"}, wantErr: "-port", usage: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"healthcheck"}, tc.args...), envOf(tc.env), &stdout, &stderr)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("healthcheck: %v, want success", err)
				}
				if !strings.HasPrefix(stdout.String(), "ok: ") {
					t.Fatalf("stdout = %q, want an ok line", stdout.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("healthcheck error = %v, want one containing %q", err, tc.wantErr)
			}
			var usage usageError
			if errors.As(err, &usage) != tc.usage {
				t.Fatalf("usageError = %v, want %v (%v)", !tc.usage, tc.usage, err)
			}
		})
	}
}

func TestHealthcheckHelp(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck", "--help"}, envOf(nil), &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "Usage: usersync healthcheck") {
		t.Fatalf("help = %q", stdout.String())
	}
}
