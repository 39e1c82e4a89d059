package gateway_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// authConfig has a placer (st-marys, may send lab orders, callbacks to
// 127.0.0.1) and a filler partner (the lab), with authentication on.
func authConfig() gateway.Config {
	cfg := gatewaytest.Config()
	cfg.Auth.Disabled = false
	cfg.Partners = []gateway.PartnerConfig{
		{ID: "st-marys", APIKeySHA256: keyHash("placer-key"), Events: []string{gatewaytest.EventLabOrder}, Callbacks: []string{"http://127.0.0.1"}},
		{ID: "lab-partner", APIKeySHA256: keyHash("lab-key"), Fillers: []string{"lab"}},
	}
	return cfg
}

func post(t *testing.T, s *gatewaytest.Stack, body []byte, query string, header http.Header) gatewaytest.Response {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/fhir+json")
	return gatewaytest.Do(t, http.MethodPost, s.Base+"/$process-message?"+query, body, header)
}

func TestAuthentication(t *testing.T) {
	s := gatewaytest.Start(t, authConfig())
	order := fixture(t, "r4/lab-order.json")
	cases := []struct {
		name   string
		header http.Header
		status int
		code   envelope.IssueType
	}{
		{"no credentials", nil, 401, "login"},
		{"unknown key", http.Header{"X-Api-Key": {"guess"}}, 401, "login"},
		{"unknown bearer", http.Header{"Authorization": {"Bearer guess"}}, 401, "login"},
		{"a filler placing an order", http.Header{"X-Api-Key": {"lab-key"}}, 403, "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s, order, "async=true", tc.header)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if oo := outcome(t, r); oo.Issue[0].Code != tc.code {
				t.Errorf("issue code %s: %s", oo.Issue[0].Code, r.Body)
			}
			if tc.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if r := s.Get(t, "/metadata", nil); r.Status != http.StatusOK {
		t.Errorf("metadata must stay public: %d", r.Status)
	}
	if r := s.Get(t, "/Task", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("Task search without credentials: %d", r.Status)
	}
	if got := s.Drain(t, "lab", 0, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("%d refused messages were routed", len(got))
	}
}

func TestAuthorizedPlacerAndFiller(t *testing.T) {
	s := gatewaytest.Start(t, authConfig())
	orderBody := fixture(t, "r4/lab-order.json")
	placer := http.Header{"Authorization": {"Bearer placer-key"}}
	if r := post(t, s, orderBody, "async=true&response-url=https%3A%2F%2Fevil.example%2Ffhir", placer); r.Status != http.StatusForbidden {
		t.Errorf("a response-url outside the partner's prefixes: %d", r.Status)
	}
	r := post(t, s, orderBody, "async=true", placer)
	if r.Status != http.StatusAccepted {
		t.Fatalf("allowed order: %d %s", r.Status, r.Body)
	}
	order, _ := envelope.NewParser(envelope.Options{}).Parse(orderBody, envelope.R4)
	ack, _ := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}.Response(order, envelope.ResponseOK, nil)
	// The placer is no filler of its order: in its scope the response
	// quotes nothing (kept, readable by the placer only) and moves nothing.
	if got := post(t, s, ack, "async=true", placer); got.Status != http.StatusUnprocessableEntity {
		t.Errorf("the placer answering for the lab: %d", got.Status)
	}
	if tv := readTaskAs(t, r.Header.Get("Content-Location"), "placer-key"); tv.Status != "requested" {
		t.Errorf("the placer's answer moved its order to %s", tv.Status)
	}
	if got := post(t, s, ack, "async=true", http.Header{"X-Api-Key": {"lab-key"}}); got.Status != http.StatusOK {
		t.Errorf("the lab's acknowledgement: %d %s", got.Status, got.Body)
	}
	task := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, placer)
	if task.Status != http.StatusOK {
		t.Errorf("the placer polling its Task: %d", task.Status)
	}
}

// issuer is an identity provider for tests: an RSA key published as a JWKS
// on a local server, signing access tokens.
type issuer struct {
	url  string
	key  jwk.Key
	jwks *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "key-1")
	_ = key.Set(jwk.AlgorithmKey, jwa.RS256())
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	body, _ := json.Marshal(set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return &issuer{url: "https://idp.stmarys.example", key: key, jwks: srv}
}

// token signs an access token; edit changes its claims.
func (is *issuer) token(t *testing.T, key jwk.Key, edit func(b *jwt.Builder) *jwt.Builder) string {
	t.Helper()
	b := jwt.NewBuilder().Issuer(is.url).Audience([]string{"fhirgw"}).Subject("ehr").Expiration(time.Now().Add(time.Hour))
	if edit != nil {
		b = edit(b)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func TestJWTAuthentication(t *testing.T) {
	is := newIssuer(t)
	cfg := authConfig()
	cfg.Partners = append(cfg.Partners, gateway.PartnerConfig{ID: "st-lukes", Events: []string{gatewaytest.EventLabOrder},
		JWT: gateway.JWTConfig{Issuer: is.url, JWKSURL: is.jwks.URL, Audience: "fhirgw"}})
	s := gatewaytest.Start(t, cfg)
	otherPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherKey, _ := jwk.Import(otherPriv)
	_ = otherKey.Set(jwk.KeyIDKey, "key-1")
	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"valid", is.token(t, is.key, nil), http.StatusAccepted},
		{"expired", is.token(t, is.key, func(b *jwt.Builder) *jwt.Builder { return b.Expiration(time.Now().Add(-time.Hour)) }), http.StatusUnauthorized},
		{"wrong audience", is.token(t, is.key, func(b *jwt.Builder) *jwt.Builder { return b.Audience([]string{"someone-else"}) }), http.StatusUnauthorized},
		{"unknown issuer", is.token(t, is.key, func(b *jwt.Builder) *jwt.Builder { return b.Issuer("https://evil.example") }), http.StatusUnauthorized},
		{"signed by an unknown key", is.token(t, otherKey, nil), http.StatusUnauthorized},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fixture(t, "r4/lab-order.json")
			id := fmt.Sprintf("4b0c2d1e-7f6a-4e3b-9c8d-%012d", 700+i) // a new message each time
			body = bytes.ReplaceAll(body, []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte(id))
			body = bytes.Replace(body, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte(fmt.Sprintf("b4a1c2d3-0000-4000-8000-%012d", 700+i)), 1)
			r := post(t, s, body, "async=true", http.Header{"Authorization": {"Bearer " + tc.token}})
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// Partners of one issuer are told apart by the token's subject (sub, or
// client_id without sub); a token matching none is 401.
func TestJWTSubjectsTellPartnersApart(t *testing.T) {
	is := newIssuer(t)
	cfg := authConfig()
	for _, p := range []struct{ id, subject string }{{"clinic-a", "client-a"}, {"clinic-b", "client-b"}} {
		cfg.Partners = append(cfg.Partners, gateway.PartnerConfig{ID: p.id, Events: []string{gatewaytest.EventLabOrder},
			JWT: gateway.JWTConfig{Issuer: is.url, JWKSURL: is.jwks.URL, Audience: "fhirgw", Subject: p.subject}})
	}
	s := gatewaytest.Start(t, cfg)
	bearer := func(edit func(b *jwt.Builder) *jwt.Builder) http.Header {
		return http.Header{"Authorization": {"Bearer " + is.token(t, is.key, edit)}}
	}
	asA := bearer(func(b *jwt.Builder) *jwt.Builder { return b.Subject("client-a") })
	asB := bearer(func(*jwt.Builder) *jwt.Builder { // no sub: a client-credentials token
		return jwt.NewBuilder().Issuer(is.url).Audience([]string{"fhirgw"}).Expiration(time.Now().Add(time.Hour)).Claim("client_id", "client-b")
	})
	r := post(t, s, fixture(t, "r4/lab-order.json"), "async=true", asA)
	if r.Status != http.StatusAccepted {
		t.Fatalf("clinic-a's order: %d %s", r.Status, r.Body)
	}
	if got := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, asA); got.Status != http.StatusOK {
		t.Errorf("clinic-a reading its order: %d", got.Status)
	}
	if got := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, asB); got.Status != http.StatusNotFound {
		t.Errorf("clinic-b (by client_id) reading clinic-a's order: %d", got.Status)
	}
	unknown := bearer(func(b *jwt.Builder) *jwt.Builder { return b.Subject("client-c") })
	if got := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, unknown); got.Status != http.StatusUnauthorized {
		t.Errorf("a subject no partner names: %d", got.Status)
	}
}
