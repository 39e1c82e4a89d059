package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
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
	if got := post(t, s, ack, "async=true", placer); got.Status != http.StatusForbidden {
		t.Errorf("the placer answering for the lab: %d", got.Status)
	}
	if got := post(t, s, ack, "async=true", http.Header{"X-Api-Key": {"lab-key"}}); got.Status != http.StatusOK {
		t.Errorf("the lab's acknowledgement: %d %s", got.Status, got.Body)
	}
	task := gatewaytest.Do(t, http.MethodGet, r.Header.Get("Content-Location"), nil, placer)
	if task.Status != http.StatusOK {
		t.Errorf("the placer polling its Task: %d", task.Status)
	}
}
