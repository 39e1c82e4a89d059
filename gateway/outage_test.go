package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// withIdentity gives the lab-order fixture a distinct identity n.
func withIdentity(t *testing.T, n int) []byte {
	t.Helper()
	b := fixture(t, "r4/lab-order.json")
	b = bytes.Replace(b, []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte(fmt.Sprintf("4b0c2d1e-7f6a-4e3b-9c8d-%012d", n)), -1)
	return bytes.Replace(b, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte(fmt.Sprintf("b4a1c2d3-0000-4000-8000-%012d", n)), 1)
}

func TestBrokerOutageKeepsAcceptingUpToTheBacklogBound(t *testing.T) {
	proxy := brokertest.NewProxy(t)
	cfg := gatewaytest.Config()
	cfg.AMQP.URL = proxy.URL()
	cfg.Outbox.MaxBacklog = 15
	cfg.Outbox.RetryAfter = gateway.Duration(7 * time.Second)
	s := gatewaytest.Start(t, cfg)

	proxy.Cut()
	if !wait.For(15*time.Second, func() bool { return !s.Relay.Ready() }) {
		t.Fatal("the relay did not notice the outage")
	}
	accepted := 0
	for i := range 20 {
		r := s.Post(t, withIdentity(t, i), "async=true", "")
		switch r.Status {
		case http.StatusAccepted:
			accepted++
		case http.StatusServiceUnavailable:
			if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra != 7 {
				t.Errorf("503 with Retry-After %q, want 7", r.Header.Get("Retry-After"))
			}
			outcome(t, r)
		default:
			t.Fatalf("message %d: status %d %s", i, r.Status, r.Body)
		}
	}
	if accepted != 15 {
		t.Fatalf("accepted %d during the outage, want the backlog bound 15", accepted)
	}
	base := s.Base[:len(s.Base)-len("/fhir")]
	if r := gatewaytest.Do(t, http.MethodGet, base+"/readyz", nil, nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz %d during the outage", r.Status)
	}
	proxy.Restore()
	got := s.Drain(t, "lab", accepted, 30*time.Second)
	ids := map[string]bool{}
	for _, d := range got {
		ids[d.MessageId] = true
	}
	if len(ids) != accepted {
		t.Fatalf("%d distinct messages reached the queue after the broker came back, want %d", len(ids), accepted)
	}
	// The relay records the confirmed publishes just after the broker holds
	// them; then the backlog is free again.
	if !wait.For(10*time.Second, func() bool { return s.Ledger.Backlog() == 0 }) {
		t.Fatalf("the backlog is still %d after the broker took every message", s.Ledger.Backlog())
	}
	if r := s.Post(t, withIdentity(t, 99), "async=true", ""); r.Status != http.StatusAccepted {
		t.Errorf("after the outage: %d", r.Status)
	}
}
