package ack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/testing/clock"
	"github.com/fhirgw/fhirgw/testing/ledgertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
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

// hanging is a placer that takes requests and never answers until the test
// ends (or the caller gives up).
type hanging struct {
	release chan struct{}
	entered atomic.Int32
	left    atomic.Int32
}

func newHanging(t *testing.T) (*hanging, *httptest.Server) {
	h := &hanging{release: make(chan struct{})}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(h.release) }) // runs first: frees the handlers Close waits for
	return h, srv
}

func (h *hanging) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.entered.Add(1)
	defer h.left.Add(1)
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
}

func (h *hanging) inFlight() int32 { return h.entered.Load() - h.left.Load() }

func accept(t testing.TB, l *ledger.SQLite, task, url string) {
	t.Helper()
	if err := l.Accept(context.Background(), &ledger.Message{TaskID: task, Identity: "id-" + task, FHIRVersion: "4.0", Event: "e",
		Body: []byte("{}"), ResponseURL: url, Status: "requested", Answer: ledger.Answer{Status: 202}}); err != nil {
		t.Fatal(err)
	}
}

func respond(t testing.TB, l *ledger.SQLite, task string, n int) {
	t.Helper()
	r := &ledger.Response{BundleID: fmt.Sprintf("%s-b%d", task, n), Identity: fmt.Sprintf("%s-r%d", task, n), TaskID: task, Code: "ok",
		Body: []byte(fmt.Sprintf("%s response %d", task, n))}
	if err := l.AddResponse(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
}

// quick retries for tests.
var quick = RetryPolicy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}

// startPusher runs a pusher on l with cfg (Store, Log and a short Poll
// filled in; a zero Retry is quick) until the test ends.
func startPusher(t testing.TB, l *ledger.SQLite, cfg PusherConfig) *Pusher {
	t.Helper()
	cfg.Store = l
	if cfg.Log == nil {
		cfg.Log = zaptest.NewLogger(t)
	}
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.Retry == (RetryPolicy{}) {
		cfg.Retry = quick
	}
	p := NewPusher(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	p.Notify()
	return p
}

func parked(t testing.TB, l *ledger.SQLite) []ledger.Callback {
	t.Helper()
	ps, err := l.ParkedCallbacks(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func owed(l *ledger.SQLite) int { n, _ := l.Callbacks(context.Background()); return n }

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
	startPusher(t, l, PusherConfig{})
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
	wait.Until(t, "no callback owed", 15*time.Second, func() bool { return owed(l) == 0 })
}

func TestNotifyPushesWithoutWaitingForAPoll(t *testing.T) {
	l := ledgertest.Open(t)
	placer := &placer{}
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL)
	p := startPusher(t, l, PusherConfig{Poll: time.Hour})
	respond(t, l, "a", 0)
	respond(t, l, "a", 1)
	p.Notify()
	// The first answer goes on the Notify, the second as soon as the first
	// is taken.
	wait.Until(t, "both answers", 10*time.Second, func() bool { return len(placer.received()) == 2 })
}

func TestAHangingPlacerDoesNotDelayAnother(t *testing.T) {
	l := ledgertest.Open(t)
	hang, hangSrv := newHanging(t)
	healthy := &placer{}
	healthySrv := httptest.NewServer(healthy)
	defer healthySrv.Close()
	for i := range 16 {
		task := fmt.Sprintf("hang-%d", i)
		accept(t, l, task, hangSrv.URL+"/fhir/$process-message")
		respond(t, l, task, 0)
	}
	p := startPusher(t, l, PusherConfig{PerOrigin: 2})
	wait.Until(t, "the hanging placer holding its lane's two calls", 10*time.Second, func() bool { return hang.entered.Load() == 2 })

	accept(t, l, "healthy", healthySrv.URL+"/fhir/$process-message")
	respond(t, l, "healthy", 0)
	p.Notify()
	wait.Until(t, "the healthy placer's answer", 10*time.Second, func() bool { return len(healthy.received()) == 1 })
	// The healthy answer went while every hanging answer was outstanding:
	// two in flight (its lane's bound), none answered, fourteen waiting.
	if in, left := hang.inFlight(), hang.left.Load(); in != 2 || left != 0 {
		t.Errorf("hanging placer: %d in flight, %d answered when the healthy answer was delivered; want 2 and 0", in, left)
	}
	wait.Until(t, "the healthy callback settled", 10*time.Second, func() bool { return owed(l) == 16 })
	if hang.entered.Load() != 2 {
		t.Errorf("%d calls reached the hanging placer, want its lane's bound of 2", hang.entered.Load())
	}
}

func TestAnAMQPPlacerHasALaneOfItsOwn(t *testing.T) {
	l := ledgertest.Open(t)
	hang, hangSrv := newHanging(t)
	for i := range 16 {
		task := fmt.Sprintf("hang-%d", i)
		accept(t, l, task, hangSrv.URL)
		respond(t, l, task, 0)
	}
	r := &replies{}
	p := startPusher(t, l, PusherConfig{Replier: r, PerOrigin: 2})
	wait.Until(t, "the hanging placer holding its lane", 10*time.Second, func() bool { return hang.entered.Load() == 2 })
	accept(t, l, "amqp", ReplyURL("fhirgw.reply.st-marys", "corr-1"))
	respond(t, l, "amqp", 0)
	respond(t, l, "amqp", 1)
	p.Notify()
	wait.Until(t, "both replies", 10*time.Second, func() bool { return len(r.got()) == 2 })
	if got := r.got(); got[0] != "fhirgw.reply.st-marys corr-1 amqp-b0" || got[1] != "fhirgw.reply.st-marys corr-1 amqp-b1" {
		t.Errorf("replies %q", got)
	}
	if hang.left.Load() != 0 {
		t.Error("the hanging placer answered")
	}
}

// replies is a Replier that records what it published.
type replies struct {
	mu   sync.Mutex
	seen []string
}

func (r *replies) Reply(_ context.Context, rep Reply) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, rep.Queue+" "+rep.CorrelationID+" "+rep.BundleID)
	return nil
}

func (r *replies) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestConcurrencyBoundsTheCallsInFlight(t *testing.T) {
	l := ledgertest.Open(t)
	var hangs []*hanging
	for o := range 3 {
		h, srv := newHanging(t)
		hangs = append(hangs, h)
		for i := range 4 {
			task := fmt.Sprintf("o%d-%d", o, i)
			accept(t, l, task, srv.URL)
			respond(t, l, task, 0)
		}
	}
	total := func() (n int32) {
		for _, h := range hangs {
			n += h.entered.Load()
		}
		return n
	}
	p := startPusher(t, l, PusherConfig{Concurrency: 5})
	wait.Until(t, "five calls in flight", 10*time.Second, func() bool { return total() == 5 })
	p.Notify()
	wait.For(100*time.Millisecond, func() bool { return total() > 5 })
	if total() != 5 {
		t.Errorf("%d calls in flight, want the bound of 5", total())
	}
	for i, h := range hangs {
		if n := h.entered.Load(); n < 1 || n > 2 {
			t.Errorf("origin %d has %d calls in flight; want 1 or 2 (each origin gets a turn, none more than 2)", i, n)
		}
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, tc := range []struct {
		status int
		client *http.Client
	}{
		{http.StatusFound, nil},
		{http.StatusTemporaryRedirect, &http.Client{}}, // a client that would follow them
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			l := ledgertest.Open(t)
			var reached, redirected atomic.Int32
			dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached.Add(1)
				w.WriteHeader(http.StatusAccepted)
			}))
			defer dest.Close()
			redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				redirected.Add(1)
				http.Redirect(w, r, dest.URL+"/fhir/$process-message", tc.status)
			}))
			defer redirect.Close()
			accept(t, l, "a", redirect.URL+"/fhir/$process-message")
			respond(t, l, "a", 0)
			startPusher(t, l, PusherConfig{Client: tc.client, Retry: RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}})
			wait.Until(t, "the callback parked", 10*time.Second, func() bool { return len(parked(t, l)) == 1 })
			p := parked(t, l)[0]
			if p.Attempts != 3 || !strings.Contains(p.ParkReason, "3 attempts failed") || !strings.Contains(p.ParkReason, "redirect") {
				t.Errorf("parked with %d attempts: %q", p.Attempts, p.ParkReason)
			}
			if redirected.Load() != 3 || reached.Load() != 0 {
				t.Errorf("%d attempts redirected and %d requests reached the destination; want 3 and 0", redirected.Load(), reached.Load())
			}
		})
	}
}

// byPath answers requests by path with the statuses given, in turn (the
// last one repeating), and records every body it was sent.
type byPath struct {
	mu       sync.Mutex
	statuses map[string][]int
	header   map[string]http.Header
	bodies   map[string][]string
}

func newByPath(statuses map[string][]int) *byPath {
	return &byPath{statuses: statuses, header: map[string]http.Header{}, bodies: map[string][]string{}}
}

func (b *byPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies[r.URL.Path] = append(b.bodies[r.URL.Path], string(body))
	s := b.statuses[r.URL.Path]
	status := http.StatusAccepted
	if len(s) > 0 {
		status = s[0]
		if len(s) > 1 {
			b.statuses[r.URL.Path] = s[1:]
		}
	}
	for k, v := range b.header[r.URL.Path] {
		w.Header()[k] = v
	}
	b.mu.Unlock()
	w.WriteHeader(status)
}

func (b *byPath) sent(path string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bodies[path]...)
}

func TestRetriesEndInAParkedCallbackThatBlocksItsTask(t *testing.T) {
	l := ledgertest.Open(t)
	placer := newByPath(map[string][]int{"/a": {http.StatusServiceUnavailable}})
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL+"/a")
	accept(t, l, "b", srv.URL+"/b") // the same origin
	respond(t, l, "a", 0)
	respond(t, l, "a", 1)
	respond(t, l, "b", 0)
	p := startPusher(t, l, PusherConfig{Retry: RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	wait.Until(t, "a's first answer parked", 10*time.Second, func() bool { return len(parked(t, l)) == 1 })
	pk := parked(t, l)[0]
	if pk.BundleID != "a-b0" || pk.Attempts != 3 || pk.LastError != "status 503" ||
		pk.ParkReason != "3 attempts failed (callbacks.retry.maxAttempts); the last: status 503" || pk.ParkedAt.IsZero() {
		t.Errorf("parked %+v", pk)
	}
	// Another task of the same placer carries on, before and after.
	wait.Until(t, "b's first answer", 10*time.Second, func() bool { return len(placer.sent("/b")) == 1 })
	respond(t, l, "b", 1)
	p.Notify()
	wait.Until(t, "b's second answer", 10*time.Second, func() bool { return len(placer.sent("/b")) == 2 })
	wait.Until(t, "b settled", 10*time.Second, func() bool { return owed(l) == 2 })
	if got := placer.sent("/a"); len(got) != 3 || got[0] != "a response 0" || got[2] != "a response 0" {
		t.Errorf("a's placer was sent %q; want its first answer three times and never the second", got)
	}
	// a's second answer waits behind the parked one, however late it is.
	due, err := l.DueCallbacks(context.Background(), time.Now().Add(48*time.Hour), 0, 10)
	if err != nil || len(due) != 0 {
		t.Errorf("due behind a parked callback: %+v %v", due, err)
	}
}

func TestARefusalParksAtOnce(t *testing.T) {
	l := ledgertest.Open(t)
	placer := newByPath(map[string][]int{"/a": {http.StatusBadRequest, http.StatusAccepted}})
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL+"/a")
	respond(t, l, "a", 0)
	respond(t, l, "a", 1)
	p := startPusher(t, l, PusherConfig{})
	wait.Until(t, "the refused answer parked", 10*time.Second, func() bool { return len(parked(t, l)) == 1 })
	if pk := parked(t, l)[0]; pk.BundleID != "a-b0" || pk.Attempts != 1 || pk.ParkReason != "status 400: the placer refused the answer" {
		t.Errorf("parked %+v", pk)
	}
	accept(t, l, "b", srv.URL+"/b")
	respond(t, l, "b", 0)
	p.Notify()
	wait.Until(t, "another task's answer", 10*time.Second, func() bool { return len(placer.sent("/b")) == 1 })
	if got := placer.sent("/a"); len(got) != 1 {
		t.Errorf("a's placer was sent %q; want only the refused answer, once", got)
	}
}

func TestTransientStatusesAreRetried(t *testing.T) {
	l := ledgertest.Open(t)
	placer := newByPath(map[string][]int{"/a": {http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusServiceUnavailable,
		http.StatusInternalServerError, http.StatusNoContent}})
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL+"/a")
	respond(t, l, "a", 0)
	respond(t, l, "a", 1)
	startPusher(t, l, PusherConfig{})
	wait.Until(t, "both answers delivered", 10*time.Second, func() bool { return owed(l) == 0 })
	if got := placer.sent("/a"); len(got) != 6 || got[4] != "a response 0" || got[5] != "a response 1" {
		t.Errorf("sent %q; want the first answer five times, then the second", got)
	}
	if len(parked(t, l)) != 0 {
		t.Error("a transient failure parked a callback")
	}
}

func TestRetryAfterIsTheLeastWait(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	c := clock.New(t0)
	l := ledgertest.OpenWithClock(t, c.Now)
	placer := newByPath(map[string][]int{"/a": {http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusAccepted}})
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL+"/a")
	respond(t, l, "a", 0)
	// First a number of seconds, then an HTTP date.
	placer.header["/a"] = http.Header{"Retry-After": {"120"}}
	startPusher(t, l, PusherConfig{Now: c.Now})

	// dueIn reports whether the callback, after n failed attempts, is due
	// d from the clock's now.
	dueIn := func(d time.Duration, n int) bool {
		due, err := l.DueCallbacks(context.Background(), c.Now().Add(d), 0, 10)
		return err == nil && len(due) == 1 && due[0].Attempts == n
	}
	wait.Until(t, "the first attempt recorded", 10*time.Second, func() bool { return dueIn(time.Hour, 1) })
	if dueIn(119*time.Second, 1) || !dueIn(120*time.Second, 1) {
		t.Fatal("after Retry-After: 120 the next attempt is not due in 120s")
	}
	placer.mu.Lock()
	placer.header["/a"] = http.Header{"Retry-After": {t0.Add(120*time.Second + 5*time.Minute).Format(http.TimeFormat)}}
	placer.mu.Unlock()
	c.Add(120 * time.Second)
	wait.Until(t, "the second attempt recorded", 10*time.Second, func() bool { return dueIn(time.Hour, 2) })
	if dueIn(5*time.Minute-time.Second, 2) || !dueIn(5*time.Minute, 2) {
		t.Fatal("after a Retry-After date 5m ahead the next attempt is not due in 5m")
	}
	if n := len(placer.sent("/a")); n != 2 {
		t.Errorf("%d attempts before the waits passed, want 2", n)
	}
	c.Add(5 * time.Minute)
	wait.Until(t, "the answer delivered", 10*time.Second, func() bool { return owed(l) == 0 })
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 7 ":                           7 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Sun, 22 Nov 2026 10:01:30 GMT": 90 * time.Second,
		"Sun, 22 Nov 2026 09:00:00 GMT": 0,
		"99999999999999":                365 * 24 * time.Hour,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestMaxAgeParks(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	c := clock.New(t0)
	l := ledgertest.OpenWithClock(t, c.Now)
	placer := newByPath(map[string][]int{"/a": {http.StatusServiceUnavailable}, "/b": {http.StatusServiceUnavailable}})
	srv := httptest.NewServer(placer)
	defer srv.Close()
	accept(t, l, "a", srv.URL+"/a")
	respond(t, l, "a", 0)
	// b failed once long ago (before a restart, say).
	accept(t, l, "b", srv.URL+"/b")
	respond(t, l, "b", 0)
	due, _ := l.DueCallbacks(context.Background(), c.Now(), 0, 10)
	if err := l.CallbackFailed(context.Background(), due[1].Seq, c.Now(), "status 503"); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	// a was never tried: it gets one attempt, which fails, and its next
	// would be past the limit. b is parked without another attempt.
	startPusher(t, l, PusherConfig{Now: c.Now, Retry: RetryPolicy{MaxAge: time.Hour, Initial: time.Millisecond, Max: time.Millisecond}})
	wait.Until(t, "both parked", 10*time.Second, func() bool { return len(parked(t, l)) == 2 })
	for _, pk := range parked(t, l) {
		if !strings.Contains(pk.ParkReason, "maxAge") {
			t.Errorf("%s parked for %q", pk.TaskID, pk.ParkReason)
		}
	}
	if a, b := len(placer.sent("/a")), len(placer.sent("/b")); a != 1 || b != 0 {
		t.Errorf("%d attempts at a and %d at b; want 1 and 0", a, b)
	}
}

func TestACallbackURLNotAllowedIsParkedUnsent(t *testing.T) {
	l := ledgertest.Open(t)
	placer := newByPath(nil)
	srv := httptest.NewServer(placer)
	defer srv.Close()
	var checked []string
	var mu sync.Mutex
	allowed := func(u *url.URL) bool {
		mu.Lock()
		checked = append(checked, u.String())
		mu.Unlock()
		return strings.HasPrefix(u.String(), srv.URL+"/fhir/")
	}
	accept(t, l, "encoded", srv.URL+"/fhir/%2e%2e/admin/$process-message")
	accept(t, l, "dotted", srv.URL+"/fhir/../admin/$process-message")
	accept(t, l, "elsewhere", "http://elsewhere.invalid/fhir/$process-message")
	accept(t, l, "fine", srv.URL+"/fhir/./$process-message")
	for _, task := range []string{"encoded", "dotted", "elsewhere", "fine"} {
		respond(t, l, task, 0)
	}
	startPusher(t, l, PusherConfig{Allowed: allowed})
	wait.Until(t, "three parked and one delivered", 10*time.Second, func() bool { return len(parked(t, l)) == 3 && owed(l) == 3 })
	reasons := map[string]string{}
	for _, pk := range parked(t, l) {
		reasons[pk.TaskID] = pk.ParkReason
		if pk.Attempts != 0 {
			t.Errorf("%s: %d attempts", pk.TaskID, pk.Attempts)
		}
	}
	if !strings.Contains(reasons["encoded"], "encoded dot segment") || !strings.Contains(reasons["dotted"], "not under an allowed") ||
		!strings.Contains(reasons["elsewhere"], "not under an allowed") {
		t.Errorf("reasons %q", reasons)
	}
	if got := placer.sent("/fhir/$process-message"); len(got) != 1 || got[0] != "fine response 0" {
		t.Errorf("the placer got %q", got)
	}
	if got := placer.sent("/admin/$process-message"); len(got) != 0 {
		t.Errorf("/admin got %q", got)
	}
	// Allowed saw the URL as dialled: resolved, with async=true.
	mu.Lock()
	defer mu.Unlock()
	want := srv.URL + "/admin/$process-message?async=true"
	found := false
	for _, u := range checked {
		found = found || u == want
	}
	if !found {
		t.Errorf("Allowed was asked about %q, not %q", checked, want)
	}
}

func TestOrderWithinATaskHoldsUnderRetries(t *testing.T) {
	l := ledgertest.Open(t)
	type attempt struct {
		n  int
		ok bool
	}
	var mu sync.Mutex
	attempts := map[string][]attempt{}
	var calls atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var task string
		var n int
		if _, err := fmt.Sscanf(string(body), "%s response %d", &task, &n); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ok := calls.Add(1)%3 == 0 // two failures in three calls
		mu.Lock()
		attempts[task] = append(attempts[task], attempt{n, ok})
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	one, two := httptest.NewServer(handler), httptest.NewServer(handler)
	defer one.Close()
	defer two.Close()
	const tasks, answers = 6, 5
	for i := range tasks {
		srv := one
		if i%2 == 1 {
			srv = two
		}
		accept(t, l, fmt.Sprintf("t%d", i), srv.URL)
	}
	p := startPusher(t, l, PusherConfig{Retry: RetryPolicy{MaxAttempts: 100, Initial: time.Millisecond, Max: 4 * time.Millisecond}})
	for n := range answers { // answers keep arriving while earlier ones are retried
		for i := range tasks {
			respond(t, l, fmt.Sprintf("t%d", i), n)
		}
		p.Notify()
	}
	wait.Until(t, "every answer delivered", 30*time.Second, func() bool { return owed(l) == 0 })
	mu.Lock()
	defer mu.Unlock()
	for i := range tasks {
		task := fmt.Sprintf("t%d", i)
		// Each answer is attempted until it is taken, and only then the next.
		next := 0
		for _, a := range attempts[task] {
			if a.n != next {
				t.Fatalf("%s: answer %d attempted while %d was owed: %v", task, a.n, next, attempts[task])
			}
			if a.ok {
				next++
			}
		}
		if next != answers {
			t.Errorf("%s: %d answers delivered, want %d", task, next, answers)
		}
	}
}
