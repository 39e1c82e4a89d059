package ack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/testing/ledgertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// placer records the bodies it took, refusing the first `down` attempts.
type placer struct {
	mu       sync.Mutex
	down     atomic.Int32
	attempts atomic.Int32
	got      []string
}

func (p *placer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.attempts.Add(1)
	if r.URL.Query().Get("async") != "true" || r.Header.Get("Content-Type") != "application/fhir+json; fhirVersion=4.0" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if p.down.Add(-1) >= 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.got = append(p.got, string(body))
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (p *placer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func accept(t *testing.T, l *ledger.SQLite, task, url string) {
	t.Helper()
	if err := l.Accept(context.Background(), &ledger.Message{TaskID: task, Identity: "id-" + task, FHIRVersion: "4.0", Event: "e",
		Body: []byte("{}"), ResponseURL: url, Status: "requested", Answer: ledger.Answer{Status: 202}}); err != nil {
		t.Fatal(err)
	}
}

func respond(t *testing.T, l *ledger.SQLite, task string, n int) {
	t.Helper()
	r := &ledger.Response{BundleID: fmt.Sprintf("%s-b%d", task, n), Identity: fmt.Sprintf("%s-r%d", task, n), TaskID: task, Code: "ok",
		Body: []byte(fmt.Sprintf("%s response %d", task, n))}
	if err := l.AddResponse(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
}

func startPusher(t *testing.T, l *ledger.SQLite) *Pusher {
	t.Helper()
	p := NewPusher(PusherConfig{Store: l, Poll: 20 * time.Millisecond, Initial: 30 * time.Millisecond, Max: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func TestAnswersReachAPlacerThatWasDownInOrder(t *testing.T) {
	l := ledgertest.Open(t)
	flaky, healthy := &placer{}, &placer{}
	flaky.down.Store(3)
	flakySrv, healthySrv := httptest.NewServer(flaky), httptest.NewServer(healthy)
	defer flakySrv.Close()
	defer healthySrv.Close()
	accept(t, l, "a", flakySrv.URL+"/fhir/$process-message")
	accept(t, l, "b", healthySrv.URL+"/fhir/$process-message")
	accept(t, l, "polled", "") // no endpoint: nothing to push
	for n := range 4 {
		respond(t, l, "a", n)
		respond(t, l, "b", n)
		respond(t, l, "polled", n)
	}
	p := startPusher(t, l)
	p.Notify()
	wait.Until(t, "every answer delivered", 15*time.Second, func() bool { return len(flaky.received()) == 4 && len(healthy.received()) == 4 })
	for n, body := range flaky.received() {
		if want := fmt.Sprintf("a response %d", n); body != want {
			t.Errorf("flaky placer got %q at %d, want %q: out of order", body, n, want)
		}
	}
	if flaky.attempts.Load() != 4+3 {
		t.Errorf("%d attempts at the flaky placer, want 7", flaky.attempts.Load())
	}
	// The last delivery is recorded just after the placer took it.
	wait.Until(t, "no callback owed", 15*time.Second, func() bool { n, _ := l.Callbacks(context.Background()); return n == 0 })
}

func TestAPlacerRefusingAnAnswerDoesNotBlockTheNext(t *testing.T) {
	l := ledgertest.Open(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	accept(t, l, "a", srv.URL)
	respond(t, l, "a", 0)
	respond(t, l, "a", 1)
	startPusher(t, l).Notify()
	wait.Until(t, "both callbacks settled", 15*time.Second, func() bool { n, _ := l.Callbacks(context.Background()); return n == 0 })
	if calls.Load() != 2 {
		t.Errorf("%d calls, want 2 (a refused one is not retried)", calls.Load())
	}
}
