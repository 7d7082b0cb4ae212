package handlers_test

import (
	"net/http"
	"strings"
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
	f.Add([]byte(`{"type":"organization.created","data":{"id":"org_1","name":"A","updated_at":2,"public_metadata":{"tier":"pro"}}}`), "msg_5", "", "", true)
	f.Add([]byte(`{"type":"organizationMembership.created","data":{"id":"orgmem_1","role":"org:admin","organization":{"id":"org_1","updated_at":3},"public_user_data":{"user_id":"user_1"},"created_at":1,"updated_at":1}}`), "msg_6", "", "", true)
	f.Add([]byte(`{"type":"organizationMembership.deleted","data":{"id":"orgmem_1"}}`), "msg_7", "", "", true)
	f.Add([]byte(`{"type":"organization.deleted","data":{"id":"org_1","deleted":true}}`), "msg_8", "", "", true)
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

// FuzzWebhookHeaders drives arbitrary id, timestamp and signature headers
// in both families (svix-* and the Standard Webhooks webhook-*), with and
// without a correct signature under one family and stray headers of the
// other beside it. Nothing may panic or be answered 5xx, nothing unsigned
// is accepted, and an accepted delivery is recorded under the id its
// signature covered, never under a header beside it.
func FuzzWebhookHeaders(f *testing.F) {
	f.Add("msg_1", "1700000000", "v1,abc", "msg_2", "", "", true, false)
	f.Add("msg_1", "", "", "msg_1", "1700000000", "v1,abc", true, true)
	f.Add("msg_signed", "x", "v1,", "msg_forged", "", "", true, true)
	f.Add("", "-1", "v2,zzz v1", "\x00", "99999999999", "v1,a v1,b", false, false)
	f.Add(strings.Repeat("m", 300), "1", "v1,a", "msg é", "1", "v1,a", true, false)
	db := modelstest.New(f, models.SQLite)
	h := newHandler(f, db, secret1)
	body := userEvent("user.created", "user_f", 1, "f@example.com")
	f.Fuzz(func(t *testing.T, id, ts, sig, otherID, otherTS, otherSig string, sign, standard bool) {
		signedFamily, otherFamily := "svix-", "webhook-"
		if standard {
			signedFamily, otherFamily = otherFamily, signedFamily
		}
		hd := http.Header{}
		if sign && id != "" {
			s := signed(t, secret1, id, time.Now(), body)
			ts, sig = s.Get("svix-timestamp"), s.Get("svix-signature")
		}
		for name, v := range map[string]string{signedFamily + "id": id, signedFamily + "timestamp": ts, signedFamily + "signature": sig,
			otherFamily + "id": otherID, otherFamily + "timestamp": otherTS, otherFamily + "signature": otherSig} {
			if v != "" && !strings.ContainsAny(v, "\r\n") {
				hd.Set(name, v)
			}
		}
		rec := post(h, body, hd)
		switch rec.Code {
		case 200, 400:
		default:
			t.Fatalf("status %d for headers %q: %s", rec.Code, hd, rec.Body)
		}
		if rec.Code != 200 {
			return
		}
		var n int64
		db.Model(&models.WebhookEvent{}).Where("svix_id = ?", hd.Get(signedFamily+"id")).Count(&n)
		if !sign || n != 1 {
			t.Fatalf("accepted %q (signed %v) but %d events recorded under the signed id", hd, sign, n)
		}
	})
}
