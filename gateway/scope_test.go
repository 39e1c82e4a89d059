package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
)

// scopeConfig has two placers (a, b) that may send lab orders and their
// cancellations, a pharmacy route for b, and the lab's partner l.
func scopeConfig(t *testing.T) gateway.Config {
	cfg := gatewaytest.Config()
	cfg.Auth.Disabled = false
	cfg.Fillers = append(cfg.Fillers, gateway.FillerConfig{ID: "pharmacy", Adapter: "amqp"})
	cfg.Routes = append([]gateway.RouteConfig{
		{Event: gatewaytest.EventLabOrder, Fillers: []string{"lab"}, CancelEvent: gatewaytest.EventLabOrder + "-cancel"},
		{Event: gatewaytest.EventLabOrder + "-cancel", Fillers: []string{"lab"}},
		{Event: "https://fhirgw.example/fhir/message-events|rx-order", Fillers: []string{"pharmacy"}},
	}, cfg.Routes[1:]...)
	events := []string{gatewaytest.EventLabOrder, gatewaytest.EventLabOrder + "-cancel", "https://fhirgw.example/fhir/message-events|rx-order"}
	suffix := fmt.Sprint(time.Now().UnixNano())
	cfg.Partners = []gateway.PartnerConfig{
		{ID: "a", APIKeySHA256: keyHash("a-key"), Events: events, AMQPUser: "a-" + suffix},
		{ID: "b", APIKeySHA256: keyHash("b-key"), Events: events, AMQPUser: "b-" + suffix},
		{ID: "l", APIKeySHA256: keyHash("l-key"), Fillers: []string{"lab"}},
	}
	return cfg
}

func as(key string) http.Header { return http.Header{"X-Api-Key": {key}} }

// Partner b tries every way into a's exchange and gets nothing: reads,
// searches, history, versions and Bundles answer 404 as for a missing
// resource; a's identity is 409 and nothing is routed; a cancellation of
// a's order matches nothing of b's (422, not routed). The lab's partner
// sees a's exchange, routed to its filler, and nothing else.
func TestNoPartnerSeesOrSteersAnothersExchange(t *testing.T) {
	s := gatewaytest.Start(t, scopeConfig(t))
	order := fixture(t, "r4/lab-order.json")
	placed := post(t, s, order, "async=true", as("a-key"))
	if placed.Status != http.StatusAccepted {
		t.Fatalf("a's order: %d %s", placed.Status, placed.Body)
	}
	task := placed.Header.Get("Content-Location")
	s.Drain(t, "lab", 1, 10*time.Second)
	parsed, _ := envelope.NewParser(envelope.Options{}).Parse(order, envelope.R4)
	ack, _ := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}.Response(parsed, envelope.ResponseOK, nil)
	answered := post(t, s, ack, "async=true", as("l-key"))
	if answered.Status != http.StatusOK {
		t.Fatalf("the lab's answer: %d %s", answered.Status, answered.Body)
	}
	bundle := answered.Header.Get("Content-Location")
	rx := bytes.Replace(fixture(t, "r4/lab-order.json"), []byte(`"code": "lab-order"`), []byte(`"code": "rx-order"`), 1)
	rx = bytes.ReplaceAll(rx, []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5ebb"))
	rx = bytes.Replace(rx, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte("b4a1c2d3-0000-4000-8000-0000000000bb"), 1)
	rx = bytes.ReplaceAll(rx, []byte("d23f0824-128b-2f33-0c5c-7fd0a6a3a450"), []byte("d23f0824-128b-2f33-0c5c-7fd0a6a3a4bb")) // b's own request
	rx = bytes.ReplaceAll(rx, []byte("ORD-2026-0001"), []byte("ORD-2026-00BB"))
	bOrder := post(t, s, rx, "async=true", as("b-key"))
	if bOrder.Status != http.StatusAccepted {
		t.Fatalf("b's own order: %d %s", bOrder.Status, bOrder.Body)
	}
	before := readTaskAs(t, task, "a-key")

	paths := []string{task, task + "/_history", task + "/_history/1", bundle}
	for _, p := range paths {
		if r := gatewaytest.Do(t, http.MethodGet, p, nil, as("b-key")); r.Status != http.StatusNotFound ||
			ooOf(t, r.Body).Issue[0].Code != "not-found" || bytes.Contains(r.Body, []byte(parsed.Identity.Key())) {
			t.Errorf("b reading %s: %d %s", strings.TrimPrefix(p, s.Base), r.Status, r.Body)
		}
		if r := gatewaytest.Do(t, http.MethodGet, p, nil, as("a-key")); r.Status != http.StatusOK {
			t.Errorf("a reading %s: %d", strings.TrimPrefix(p, s.Base), r.Status)
		}
		if r := gatewaytest.Do(t, http.MethodGet, p, nil, as("l-key")); r.Status != http.StatusOK {
			t.Errorf("the lab reading %s: %d", strings.TrimPrefix(p, s.Base), r.Status)
		}
	}
	if r := gatewaytest.Do(t, http.MethodGet, bOrder.Header.Get("Content-Location"), nil, as("l-key")); r.Status != http.StatusNotFound {
		t.Errorf("the lab reading b's pharmacy order: %d", r.Status)
	}
	for key, want := range map[string][]string{
		"a-key": {task}, "b-key": {bOrder.Header.Get("Content-Location")}, "l-key": {task},
	} {
		for _, q := range []string{"", "identifier=" + parsed.Identity.Key(), "_lastUpdated=gt2000-01-01T00:00:00Z"} {
			got, want := searchIDs(t, s, q, key), want
			if strings.HasPrefix(q, "identifier") && key == "b-key" {
				want = nil // a's identity
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s searching %q: %v, want %v", key, q, got, want)
			}
		}
	}

	// b re-sends a's identity: 409, nothing routed, a's exchange unchanged.
	resent := post(t, s, order, "async=true", as("b-key"))
	if resent.Status != http.StatusConflict || ooOf(t, resent.Body).Issue[0].Code != "duplicate" || resent.Header.Get("Content-Location") != "" {
		t.Errorf("b sending a's identity: %d %s", resent.Status, resent.Body)
	}
	// a's own resend is a duplicate, replayed.
	if again := post(t, s, order, "async=true", as("a-key")); again.Status != http.StatusAccepted || again.Header.Get(gateway.HeaderDuplicate) != "true" ||
		again.Header.Get("Content-Location") != task {
		t.Errorf("a's resend: %d %v", again.Status, again.Header)
	}
	// b cancels a's order: nothing of b's matches.
	if r := post(t, s, cancellation(t), "async=true", as("b-key")); r.Status != http.StatusUnprocessableEntity || ooOf(t, r.Body).Issue[0].Code != "not-found" {
		t.Errorf("b cancelling a's order: %d %s", r.Status, r.Body)
	}
	if got := s.Drain(t, "lab", 1, time.Second); len(got) != 0 {
		t.Errorf("b's messages reached the lab: %d", len(got))
	}
	if after := readTaskAs(t, task, "a-key"); after.Status != before.Status || after.Meta.VersionID != before.Meta.VersionID {
		t.Errorf("a's Task changed: %+v -> %+v", before, after)
	}
}

// searchIDs is the Task locations a partner's search finds.
func searchIDs(t *testing.T, s *gatewaytest.Stack, query, key string) []string {
	t.Helper()
	r := s.Get(t, "/Task?"+query, as(key))
	var b struct {
		Entry []struct{ FullURL string }
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", query, r.Status, r.Body)
	}
	var ids []string
	for _, e := range b.Entry {
		ids = append(ids, e.FullURL)
	}
	return ids
}

// Over AMQP the same: b publishing a's identity hears 409 on its reply
// queue, and nothing reaches the lab.
func TestNoPartnerTakesAnothersIdentityOverAMQP(t *testing.T) {
	s := gatewaytest.Start(t, scopeConfig(t))
	a, b := s.Partner(t, "a"), s.Partner(t, "b")
	a.Send(t, fixture(t, "r4/lab-order.json"), "conv-a")
	if d := a.Await(t, "conv-a", 10*time.Second); gatewaytest.Status(d) != http.StatusAccepted {
		t.Fatalf("a's order: %d %s", gatewaytest.Status(d), d.Body)
	}
	s.Drain(t, "lab", 1, 10*time.Second)
	b.Send(t, fixture(t, "r4/lab-order.json"), "conv-b")
	d := b.Await(t, "conv-b", 10*time.Second)
	if gatewaytest.Status(d) != http.StatusConflict || ooOf(t, d.Body).Issue[0].Code != "duplicate" {
		t.Errorf("b publishing a's identity: %d %s", gatewaytest.Status(d), d.Body)
	}
	b.Send(t, cancellation(t), "conv-b-cancel")
	if d := b.Await(t, "conv-b-cancel", 10*time.Second); gatewaytest.Status(d) != http.StatusUnprocessableEntity {
		t.Errorf("b cancelling a's order over AMQP: %d %s", gatewaytest.Status(d), d.Body)
	}
	if got := s.Drain(t, "lab", 1, time.Second); len(got) != 0 {
		t.Errorf("b's messages reached the lab: %d", len(got))
	}
}

// A lab's progress that points at a relative reference two placers' orders
// share is not guessed: 422 multiple-matches, and neither order moves; named
// by its conversation id, it moves the one it names.
func TestProgressSharedByTwoPlacersIsNotGuessed(t *testing.T) {
	s := gatewaytest.Start(t, scopeConfig(t))
	orderA := fixture(t, "r4/lab-order.json")
	orderB := bytes.ReplaceAll(fixture(t, "r4/lab-order.json"), []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5ebb"))
	orderB = bytes.Replace(orderB, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte("b4a1c2d3-0000-4000-8000-0000000000bb"), 1)
	a := post(t, s, orderA, "async=true", as("a-key"))
	b := post(t, s, orderB, "async=true", as("b-key"))
	if a.Status != http.StatusAccepted || b.Status != http.StatusAccepted {
		t.Fatalf("orders %d %d", a.Status, b.Status)
	}
	progress := progressMessage(envelope.R4, 1, `{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000001","resource":{"resourceType":"Task","id":"lab-task",
		"status":"in-progress","intent":"order","focus":{"reference":"ServiceRequest/d23f0824-128b-2f33-0c5c-7fd0a6a3a450"}}}`)
	r := post(t, s, progress, "async=true", as("l-key"))
	if r.Status != http.StatusUnprocessableEntity || ooOf(t, r.Body).Issue[0].Code != "multiple-matches" {
		t.Errorf("ambiguous progress: %d %s", r.Status, r.Body)
	}
	for _, o := range []gatewaytest.Response{a, b} {
		if tv := readTaskAs(t, o.Header.Get("Content-Location"), "l-key"); tv.Status != "requested" {
			t.Errorf("an order moved by ambiguous progress: %+v", tv)
		}
	}
	h := as("l-key")
	h.Set("X-Correlation-ID", "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5ebb")
	if r := post(t, s, progressMessage(envelope.R4, 2, `{"fullUrl":"urn:uuid:7b7b7b7b-0000-4000-8000-000000000002","resource":{"resourceType":"Task","id":"lab-task",
		"status":"in-progress","intent":"order","focus":{"reference":"ServiceRequest/d23f0824-128b-2f33-0c5c-7fd0a6a3a450"}}}`), "async=true", h); r.Status != http.StatusOK {
		t.Errorf("progress named by its conversation: %d %s", r.Status, r.Body)
	}
	if tv := readTaskAs(t, b.Header.Get("Content-Location"), "b-key"); tv.Status != "in-progress" {
		t.Errorf("b's order after its progress: %+v", tv)
	}
	if tv := readTaskAs(t, a.Header.Get("Content-Location"), "a-key"); tv.Status != "requested" {
		t.Errorf("a's order after b's progress: %+v", tv)
	}
}
