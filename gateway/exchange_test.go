package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// subTask is a filler's Task of a fanned-out exchange, as read.
type subTask struct {
	ID     string
	Status string
	PartOf []struct{ Reference string }
	Owner  struct {
		Identifier struct{ System, Value string }
	}
}

// searchTasks is the Tasks a search by the partner with key finds.
func searchTasks(t *testing.T, s *gatewaytest.Stack, query, key string) []subTask {
	t.Helper()
	r := s.Get(t, "/Task?"+query, as(key))
	var b struct {
		Entry []struct{ Resource subTask }
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", query, r.Status, r.Body)
	}
	var out []subTask
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

// In a fan-out each filler's delivery is a Task of its own: the archive's
// delivery parks, the lab (an authenticated partner, so its answers move
// its own Task) completes, both states are visible, and the exchange
// follows the rule (completed: one filler's failure never undoes another's
// result).
func TestFanOutOneFillerParksTheOtherCompletes(t *testing.T) {
	archive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // with one attempt allowed: parked at once
	}))
	defer archive.Close()
	cfg := gatewaytest.Config()
	cfg.Auth.Disabled = false
	cfg.Partners = []gateway.PartnerConfig{
		{ID: "p", APIKeySHA256: keyHash("p-key"), Events: []string{gatewaytest.EventLabResult}},
		{ID: "l", APIKeySHA256: keyHash("l-key"), Fillers: []string{"lab"}},
	}
	cfg.Fillers[1] = gateway.FillerConfig{ID: "archive", Adapter: "http", URL: archive.URL, Retry: gateway.RetryConfig{MaxAttempts: 1}}
	s := gatewaytest.Start(t, cfg)
	s.RunFiller(t, samplefiller.Config{Queue: s.Topology.FillerQueue("lab"), APIKey: "l-key",
		Steps: []samplefiller.Step{samplefiller.Respond(envelope.ResponseOK), samplefiller.Progress("completed", "results final")}})
	r := post(t, s, fixture(t, "r4/lab-result.json"), "async=true", as("p-key"))
	if r.Status != http.StatusAccepted {
		t.Fatalf("result %d %s", r.Status, r.Body)
	}
	exchange := r.Header.Get("Content-Location")
	id := exchange[strings.LastIndex(exchange, "/")+1:]
	var subs []subTask
	if !wait.For(15*time.Second, func() bool {
		subs = searchTasks(t, s, "part-of=Task/"+id, "p-key")
		return len(subs) == 2 && subs[0].Status != "requested" && subs[1].Status != "requested" &&
			(subs[0].Status == "completed" || subs[1].Status == "completed")
	}) {
		t.Fatalf("the fillers' Tasks: %+v", subs)
	}
	states := map[string]string{}
	for _, sub := range subs {
		if len(sub.PartOf) != 1 || sub.PartOf[0].Reference != "Task/"+id || sub.Owner.Identifier.System != gateway.FillerSystem {
			t.Errorf("a filler's Task %+v", sub)
		}
		states[sub.Owner.Identifier.Value] = sub.Status
	}
	if states["lab"] != "completed" || states["archive"] != "failed" {
		t.Errorf("the fillers' states: %v", states)
	}
	tv := readTaskAs(t, exchange, "p-key")
	if tv.Status != "completed" || !strings.Contains(tv.BusinessStatus.Text, "archive failed") {
		t.Errorf("the exchange: %+v", tv)
	}
	if got := searchTasks(t, s, "owner:identifier="+gateway.FillerSystem+"|archive", "p-key"); len(got) != 1 || got[0].Status != "failed" {
		t.Errorf("the archive's Tasks: %+v", got)
	}
	if got := searchTasks(t, s, "", "p-key"); len(got) != 1 || got[0].ID != id {
		t.Errorf("a plain search finds the exchange only: %+v", got)
	}
	// The lab's partner sees the exchange and its own Task, not the archive's.
	if got := searchTasks(t, s, "part-of=Task/"+id, "l-key"); len(got) != 1 || got[0].Owner.Identifier.Value != "lab" {
		t.Errorf("the lab's view of the fillers' Tasks: %+v", got)
	}
}

// cancellationR5 is the R5 lab order's cancellation.
func cancellationR5(t *testing.T) []byte {
	t.Helper()
	b := fixture(t, "r5/lab-order.json")
	b = bytes.Replace(b, []byte(`"code": "lab-order"`), []byte(`"code": "lab-order-cancel"`), 1)
	b = bytes.ReplaceAll(b, []byte("urn:uuid:5e5e5e5e-0000-4000-8000-000000000001"), []byte("urn:uuid:5e5e5e5e-0000-4000-8000-0000000000cc"))
	b = bytes.ReplaceAll(b, []byte("5c0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte("5c0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5ecc"))
	return bytes.Replace(b, []byte("b5a1c2d3-0000-4000-8000-000000000001"), []byte("b5a1c2d3-0000-4000-8000-0000000000cc"), 1)
}

// cancelConfig routes lab orders and their cancellations to the lab, which
// consumes its queue itself (the gateway cannot hold an order back).
func cancelConfig() gateway.Config {
	cfg := gatewaytest.Config()
	cfg.Routes[0].CancelEvent = "https://fhirgw.example/fhir/message-events|lab-order-cancel"
	cfg.Routes = append(cfg.Routes, gateway.RouteConfig{Event: "https://fhirgw.example/fhir/message-events|lab-order-cancel", Fillers: []string{"lab"}})
	return cfg
}

// A cancellation of an order already delivered goes to the filler, with a
// Task of its own; the filler's answer decides: ok cancels the order,
// fatal-error refuses it and the order goes on. R4 and R5.
func TestCancellationAfterDeliveryIsDecidedByTheFiller(t *testing.T) {
	for _, tc := range []struct {
		name             string
		version          envelope.Version
		order            string
		cancel           func(*testing.T) []byte
		code             envelope.ResponseCode
		status, business string
	}{
		{"R4 confirmed", envelope.R4, "r4/lab-order.json", cancellation, envelope.ResponseOK, "cancelled", "confirmed by lab"},
		{"R4 refused", envelope.R4, "r4/lab-order.json", cancellation, envelope.ResponseFatalError, "requested", "refused by lab"},
		{"R5 confirmed", envelope.R5, "r5/lab-order.json", cancellationR5, envelope.ResponseOK, "cancelled", "confirmed by lab"},
		{"R5 refused", envelope.R5, "r5/lab-order.json", cancellationR5, envelope.ResponseFatalError, "requested", "refused by lab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := gatewaytest.Start(t, cancelConfig())
			ct := "application/fhir+json; fhirVersion=" + tc.version.String()
			order := s.Post(t, fixture(t, tc.order), "async=true", ct)
			if order.Status != http.StatusAccepted {
				t.Fatalf("order %d %s", order.Status, order.Body)
			}
			s.Drain(t, "lab", 1, 10*time.Second)
			cancelBody := tc.cancel(t)
			cancel := s.Post(t, cancelBody, "async=true", ct)
			if cancel.Status != http.StatusAccepted || cancel.Header.Get("Content-Location") == order.Header.Get("Content-Location") {
				t.Fatalf("the cancellation: %d %s (routed, with a Task of its own)", cancel.Status, cancel.Body)
			}
			if got := s.Drain(t, "lab", 1, 10*time.Second); len(got) != 1 {
				t.Fatalf("the cancellation did not reach the lab")
			}
			parsed, err := envelope.NewParser(envelope.Options{}).Parse(cancelBody, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}.Response(parsed, tc.code, nil)
			if r := s.Post(t, answer, "async=true", ct); r.Status != http.StatusOK {
				t.Fatalf("the lab's answer: %d %s", r.Status, r.Body)
			}
			tv := readTask(t, s, order.Header.Get("Content-Location"))
			if tv.Status != tc.status || !strings.Contains(tv.BusinessStatus.Text, tc.business) {
				t.Errorf("the order: %s %q, want %s %q", tv.Status, tv.BusinessStatus.Text, tc.status, tc.business)
			}
			if ct := readTask(t, s, cancel.Header.Get("Content-Location")); len(ct.Output) != 1 {
				t.Errorf("the cancellation's Task: %+v", ct)
			}
		})
	}
}

// A cancellation that races a delivery is decided in one transaction: the
// filler holds the order (its delivery started), so the cancellation is
// routed to it rather than answered "cancelled before delivery".
func TestACancellationRacingADeliveryNeverCancelsWhatTheFillerHas(t *testing.T) {
	var inFlight atomic.Bool
	release := make(chan struct{})
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("X-Correlation-ID"), "5ecc") {
			w.WriteHeader(http.StatusAccepted) // the cancellation
			return
		}
		inFlight.Store(true)
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	defer filler.Close()
	defer close(release)
	cfg := httpConfig(filler.URL)
	cfg.Routes[0].CancelEvent = "https://fhirgw.example/fhir/message-events|lab-order-cancel"
	cfg.Routes = append(cfg.Routes, gateway.RouteConfig{Event: "https://fhirgw.example/fhir/message-events|lab-order-cancel", Fillers: []string{"lab"}})
	s := gatewaytest.Start(t, cfg)
	order := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	if order.Status != http.StatusAccepted {
		t.Fatalf("order %d", order.Status)
	}
	if !wait.For(10*time.Second, inFlight.Load) {
		t.Fatal("the order never reached the filler")
	}
	cancel := s.Post(t, cancellation(t), "async=true", "")
	if cancel.Status != http.StatusAccepted {
		t.Errorf("a cancellation of an order the filler holds: %d %s, want it routed (202)", cancel.Status, cancel.Body)
	}
	if tv := readTask(t, s, order.Header.Get("Content-Location")); tv.Status == "cancelled" {
		t.Errorf("the order the filler holds was cancelled: %+v", tv)
	}
}
