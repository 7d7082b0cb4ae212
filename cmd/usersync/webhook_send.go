package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
)

const webhookSendHelp = `Usage: usersync webhook send [--url URL] [--type T] [--file F] [--id ID]

Signs a Clerk event with the configured signing secret (or the development
secret that serve uses) and POSTs it, then prints the status and body.
Without --file it sends a built-in sample user event of type --type, stamped
with the current time, so each send of user.updated is newer than the last.
Each send gets a new Svix message id unless --id names one: sending the same
--id twice shows the service answering "duplicate" (a redelivery).
Exits 1 when the answer is not 2xx.
`

// sampleUserID is the Clerk id of the built-in sample user.
const sampleUserID = "user_2usersyncSampleUser000001"

func webhookSend(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("webhook send", flag.ContinueOnError)
	target := fs.String("url", "", "where to POST (default http://localhost:$PORT/api/webhooks/clerk)")
	typ := fs.String("type", "user.created", "built-in sample event: user.created, user.updated or user.deleted")
	file := fs.String("file", "", "send this file's bytes as the event instead of a sample")
	msgID := fs.String("id", "", "Svix message id to send (default a new random msg_…); repeat one to see \"duplicate\"")
	if err := parseFlags(fs, args, stdout, webhookSendHelp); err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return usageError{err}
	}
	if *target == "" {
		*target = fmt.Sprintf("http://localhost:%d/api/webhooks/clerk", cfg.Port)
	}
	body, err := eventBody(*file, *typ)
	if err != nil {
		return err
	}
	secrets, err := webhookSecrets(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if *msgID == "" {
		*msgID = "msg_" + rand.Text()
	}
	status, answer, err := sendSigned(ctx, *target, secrets[0], *msgID, body)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d %s\n", status, strings.TrimSpace(answer))
	if status < 200 || status > 299 {
		return fmt.Errorf("webhook answered %d", status)
	}
	return nil
}

func eventBody(file, typ string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageError{fmt.Errorf("--file: %v", err)}
		}
		return b, nil
	}
	switch typ {
	case "user.created", "user.updated", "user.deleted":
		return sampleEvent(typ, time.Now())
	}
	return nil, usageError{fmt.Errorf("--type: %q is not user.created, user.updated or user.deleted", typ)}
}

// sampleEvent is a Clerk event shaped like Clerk's documented example.
func sampleEvent(typ string, now time.Time) ([]byte, error) {
	if typ == "user.deleted" {
		return clerkapi.EventJSON(typ, "", now, clerkapi.DeletedUser(sampleUserID))
	}
	u := clerkapi.NewUser(sampleUserID, now.UnixMilli(), "sample.user@example.com")
	u.FirstName, u.LastName, u.ImageURL = clerk.String("Sample"), clerk.String("User"), clerk.String("https://img.clerk.com/sample")
	return clerkapi.EventJSON(typ, "", now, u)
}

// sendSigned POSTs body with fresh Svix headers signed by secret.
func sendSigned(ctx context.Context, target, secret, msgID string, body []byte) (int, string, error) {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return 0, "", err
	}
	now := time.Now()
	sig, err := wh.Sign(msgID, now, body)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", usageError{fmt.Errorf("--url: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("svix-id", msgID)
	req.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("svix-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", target, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(answer), err
}
