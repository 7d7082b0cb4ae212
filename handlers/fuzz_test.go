package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// FuzzWebhook drives arbitrary bodies and Svix headers through the real
// handler. With sign set, the body is signed correctly, so decoding,
// mapping and the upsert run too. No input may panic or be answered 5xx.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"type":"user.created","data":{"id":"user_1","updated_at":1}}`), "msg_1", "1700000000", "v1,abc", true)
	f.Add([]byte(`{"type":"user.deleted","data":{"id":"user_1"}}`), "msg_2", "", "", true)
	f.Add([]byte(`{"type":"user.updated","data":{"id":"u","email_addresses":[{"id":"e","email_address":"A@B"}],"primary_email_address_id":"e","public_metadata":{"tier":"pro"}}}`), "msg_3", "x", "v1,", true)
	f.Add([]byte(`{}`), "", "-1", "v2,zzz v1", false)
	f.Add([]byte(`{"type":"session.created","data":{"id":"sess_1","user_id":"user_1"}}`), "msg 4", "99999999999", "v1,a v1,b", true)
	db := modelstest.New(f, models.SQLite)
	h := newHandler(f, db, secret1)
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string, sign bool) {
		hd := http.Header{}
		hd.Set("svix-id", id)
		hd.Set("svix-timestamp", ts)
		hd.Set("svix-signature", sig)
		signedIt := sign && id != ""
		if signedIt {
			hd = signed(t, secret1, id, time.Now(), body)
		}
		rec := post(h, body, hd)
		switch rec.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == 200 && !signedIt {
			t.Fatalf("unsigned body accepted: %q id=%q ts=%q sig=%q", body, id, ts, sig)
		}
	})
}
