package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/wait"
)

// httpFiller is a filler's $process-message that answers every message
// with a response message of the given code in the HTTP answer itself.
func httpFiller(t *testing.T, status int, code envelope.ResponseCode) *httptest.Server {
	t.Helper()
	parser := envelope.NewParser(envelope.Options{})
	responder := envelope.Responder{Sender: envelope.Sender{Name: "lab", Endpoint: "https://lab.example/fhir"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if status >= 300 {
			w.WriteHeader(status)
			return
		}
		req, err := parser.Parse(body, envelope.VersionAuto)
		if err != nil {
			t.Errorf("the filler got an invalid message: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		resp, _ := responder.Response(req, code, nil)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(status)
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func httpConfig(url string) gateway.Config {
	cfg := gatewaytest.Config()
	cfg.Fillers[0] = gateway.FillerConfig{ID: "lab", Adapter: "http", URL: url,
		Retry: gateway.RetryConfig{MaxAttempts: 3, InitialBackoff: gateway.Duration(20 * time.Millisecond), MaxBackoff: gateway.Duration(50 * time.Millisecond)}}
	return cfg
}

type taskView struct {
	Meta           struct{ VersionID string }
	Status         string
	BusinessStatus struct{ Text string }
	Output         []struct{ ValueReference struct{ Reference string } }
}

func readTask(t *testing.T, s *gatewaytest.Stack, location string) taskView {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodGet, location, nil, nil)
	var tv taskView
	if err := json.Unmarshal(r.Body, &tv); err != nil {
		t.Fatalf("task %d %s", r.Status, r.Body)
	}
	return tv
}

func TestHTTPFillerAnswerReturnsToASynchronousPost(t *testing.T) {
	filler := httpFiller(t, http.StatusOK, envelope.ResponseOK)
	s := gatewaytest.Start(t, httpConfig(filler.URL+"/fhir/$process-message"))
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	resp, err := envelope.NewParser(envelope.Options{}).Parse(r.Body, envelope.R4)
	if err != nil || resp.Header.Response == nil || resp.Header.Response.Identifier.Value != "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01" {
		t.Fatalf("not the filler's correlated response: %v %s", err, r.Body)
	}
	if tv := readTask(t, s, r.Header.Get("Content-Location")); tv.Status != "accepted" || len(tv.Output) != 1 {
		t.Errorf("task %+v", tv)
	}
}

func TestParkedDeliveryFailsTheTaskAndAnswersThePlacer(t *testing.T) {
	filler := httpFiller(t, http.StatusServiceUnavailable, "")
	s := gatewaytest.Start(t, httpConfig(filler.URL))
	placer := newPlacer(t)
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true&response-url="+placer.srv.URL, "")
	if r.Status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	var tv taskView
	if !wait.For(20*time.Second, func() bool { tv = readTask(t, s, loc); return tv.Status == "failed" && len(tv.Output) > 0 }) {
		t.Fatalf("the task never failed: %+v", tv)
	}
	if !bytes.Contains([]byte(tv.BusinessStatus.Text), []byte("delivery to lab failed")) {
		t.Errorf("business status %q", tv.BusinessStatus.Text)
	}
	b := s.Get(t, "/"+tv.Output[0].ValueReference.Reference, nil)
	resp, err := envelope.NewParser(envelope.Options{}).Parse(b.Body, envelope.R4)
	if err != nil || resp.Header.Response.Code != envelope.ResponseTransientError {
		t.Errorf("the placer's answer: %v %s", err, b.Body)
	}
	wait.For(20*time.Second, func() bool { return len(placer.received()) > 0 })
	if got := placer.received(); len(got) != 1 || !bytes.Equal(got[0], b.Body) {
		t.Errorf("the placer received %d messages, want the transient-error response", len(got))
	}
}

func TestASilentFillerPastTheAckDeadlineFailsTheTask(t *testing.T) {
	cfg := gatewaytest.Config()
	cfg.Routes[0].AckDeadline = gateway.Duration(300 * time.Millisecond)
	s := gatewaytest.Start(t, cfg)
	placer := newPlacer(t)
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true&response-url="+placer.srv.URL, "")
	if r.Status != http.StatusAccepted {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	wait.For(15*time.Second, func() bool { return len(placer.received()) > 0 })
	got := placer.received()
	if len(got) != 1 {
		t.Fatalf("the placer received %d messages, want the transient-error response", len(got))
	}
	resp, err := envelope.NewParser(envelope.Options{}).Parse(got[0], envelope.R4)
	if err != nil || resp.Header.Response.Code != envelope.ResponseTransientError {
		t.Errorf("the placer got %v %s", err, got[0])
	}
	tv := readTask(t, s, loc)
	if tv.Status != "failed" || !bytes.Contains([]byte(tv.BusinessStatus.Text), []byte("acknowledgement overdue")) {
		t.Errorf("task %+v", tv)
	}
}

// cancellation turns the lab order into its cancellation: a new identity,
// the cancel event, the same ServiceRequest (revoked) in focus.
func cancellation(t *testing.T) []byte {
	t.Helper()
	b := fixture(t, "r4/lab-order.json")
	b = bytes.Replace(b, []byte(`"code": "lab-order"`), []byte(`"code": "lab-order-cancel"`), 1)
	b = bytes.ReplaceAll(b, []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01"), []byte("4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5ecc"))
	b = bytes.Replace(b, []byte("b4a1c2d3-0000-4000-8000-000000000001"), []byte("b4a1c2d3-0000-4000-8000-0000000000cc"), 1)
	return bytes.Replace(b, []byte(`"status": "active"`), []byte(`"status": "revoked"`), 1)
}

func TestCancelBeforeDeliveryIsNeverDelivered(t *testing.T) {
	var open atomic.Bool
	var delivered atomic.Int32
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !open.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer filler.Close()
	cfg := httpConfig(filler.URL)
	cfg.Fillers[0].Retry = gateway.RetryConfig{MaxAttempts: 10, InitialBackoff: gateway.Duration(300 * time.Millisecond), MaxBackoff: gateway.Duration(300 * time.Millisecond)}
	cfg.Routes[0].CancelEvent = "https://fhirgw.example/fhir/message-events|lab-order-cancel"
	s := gatewaytest.Start(t, cfg)
	order := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	if order.Status != http.StatusAccepted {
		t.Fatalf("order %d", order.Status)
	}
	cancel := s.Post(t, cancellation(t), "async=true", "")
	if cancel.Status != http.StatusOK {
		t.Fatalf("cancellation %d %s", cancel.Status, cancel.Body)
	}
	open.Store(true)
	time.Sleep(1500 * time.Millisecond) // several retry periods: a delivery would have happened
	if delivered.Load() != 0 {
		t.Errorf("the cancelled order was delivered %d times", delivered.Load())
	}
	if tv := readTask(t, s, order.Header.Get("Content-Location")); tv.Status != "cancelled" {
		t.Errorf("order task %+v", tv)
	}
	if again := s.Post(t, cancellation(t), "async=true", ""); again.Status != http.StatusOK || !bytes.Equal(again.Body, cancel.Body) {
		t.Errorf("the cancellation resent: %d %s", again.Status, again.Body)
	}
}

func TestCancelAfterDeliveryIsRoutedToTheFiller(t *testing.T) {
	cfg := gatewaytest.Config()
	cfg.Routes[0].CancelEvent = "https://fhirgw.example/fhir/message-events|lab-order-cancel"
	cfg.Routes = append(cfg.Routes, gateway.RouteConfig{Event: "https://fhirgw.example/fhir/message-events|lab-order-cancel", Fillers: []string{"lab"}})
	s := gatewaytest.Start(t, cfg) // lab consumes its queue itself: the gateway cannot hold the order back
	if r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", ""); r.Status != http.StatusAccepted {
		t.Fatalf("order %d", r.Status)
	}
	if r := s.Post(t, cancellation(t), "async=true", ""); r.Status != http.StatusAccepted {
		t.Fatalf("cancellation %d %s", r.Status, r.Body)
	}
	if got := s.Drain(t, "lab", 2, 10*time.Second); len(got) != 2 {
		t.Errorf("the lab queue holds %d messages, want the order and its cancellation", len(got))
	}
}

func TestRESTFillerOutcomeBecomesTheResponse(t *testing.T) {
	var got atomic.Int32
	fhirServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"type":"transaction"`)) || !bytes.Contains(body, []byte(`"actionable"`)) {
			t.Errorf("not an actionable transaction: %.200s", body)
		}
		got.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"transaction-response"}`))
	}))
	defer fhirServer.Close()
	cfg := httpConfig(fhirServer.URL + "/fhir")
	cfg.Fillers[0].Adapter = "rest"
	s := gatewaytest.Start(t, cfg)
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	resp, err := envelope.NewParser(envelope.Options{}).Parse(r.Body, envelope.R4)
	if err != nil || resp.Header.Response.Code != envelope.ResponseOK || got.Load() != 1 {
		t.Errorf("%v %d calls %s", err, got.Load(), r.Body)
	}
	if tv := readTask(t, s, r.Header.Get("Content-Location")); tv.Status != "accepted" {
		t.Errorf("task %+v", tv)
	}
}

// A filler's permanent refusal (400) rejects the Task and the placer hears
// fatal-error: resending the message unchanged cannot help.
func TestARefusedDeliveryRejectsTheTaskWithAFatalError(t *testing.T) {
	filler := httpFiller(t, http.StatusBadRequest, "")
	s := gatewaytest.Start(t, httpConfig(filler.URL))
	r := s.Post(t, fixture(t, "r4/lab-order.json"), "async=true", "")
	if r.Status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var tv taskView
	if !wait.For(20*time.Second, func() bool {
		tv = readTask(t, s, r.Header.Get("Content-Location"))
		return tv.Status == "rejected" && len(tv.Output) > 0
	}) {
		t.Fatalf("the task was not rejected: %+v", tv)
	}
	if !strings.Contains(tv.BusinessStatus.Text, "refused the message: filler lab answered 400") {
		t.Errorf("business status %q", tv.BusinessStatus.Text)
	}
	b := s.Get(t, "/"+tv.Output[0].ValueReference.Reference, nil)
	resp, err := envelope.NewParser(envelope.Options{}).Parse(b.Body, envelope.R4)
	if err != nil || resp.Header.Response.Code != envelope.ResponseFatalError {
		t.Errorf("the placer's answer: %v %s", err, b.Body)
	}
}
