package adapters

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
)

// No goleak here: the broker harness may start a container.
func TestMain(m *testing.M) { brokertest.Main(m) }

// recordingSink is the Sink of these tests: it records what the worker
// reports and can cancel tasks.
type recordingSink struct {
	refused   []string // tasks the filler refused
	mu        sync.Mutex
	delivered []Message
	responses int
	parked    map[string]string
	cancelled map[string]bool
	events    []string // "delivered <task>", "parked <task>", and what the test notes, in order
}

// note adds an event of the test's own (a filler's request, say) to the
// sink's sequence.
func (s *recordingSink) note(event string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, event)
}

func (s *recordingSink) sequence() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

func newSink() *recordingSink {
	return &recordingSink{parked: map[string]string{}, cancelled: map[string]bool{}}
}

func (s *recordingSink) Deliverable(_ context.Context, m Message) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.cancelled[m.TaskID], nil
}

func (s *recordingSink) Delivered(_ context.Context, m Message, res Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delivered = append(s.delivered, m)
	s.responses += len(res.Responses)
	s.events = append(s.events, "delivered "+m.TaskID)
	return nil
}

func (s *recordingSink) Parked(_ context.Context, m Message, why Parking) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parked[m.TaskID] = why.Reason
	if why.Refused {
		s.refused = append(s.refused, m.TaskID)
	}
	s.events = append(s.events, "parked "+m.TaskID)
	return nil
}

func (s *recordingSink) counts() (delivered, parked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.delivered), len(s.parked)
}

// fixture declares a topology for the fillers and removes it afterwards.
func fixture(t *testing.T, fillers ...string) (router.Topology, *amqp.Channel) {
	t.Helper()
	topo := router.Topology{Prefix: brokertest.Name(t, "ad"), Fillers: fillers, DeliveryLimit: 20}
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Delete(ch); err != nil {
			t.Log(err)
		}
	})
	return topo, ch
}

// route publishes a message to a filler the way the relay does.
func route(t *testing.T, ch *amqp.Channel, topo router.Topology, filler, taskID string) {
	t.Helper()
	routeIdentity(t, ch, topo, filler, taskID, "id-"+taskID)
}

// routeIdentity is route with the message identity (message_id) given.
func routeIdentity(t *testing.T, ch *amqp.Channel, topo router.Topology, filler, taskID, identity string) {
	t.Helper()
	err := ch.PublishWithContext(context.Background(), topo.RouteExchange(), topo.FillerKey(filler), true, false, amqp.Publishing{
		ContentType: "application/fhir+json; fhirVersion=4.0", DeliveryMode: amqp.Persistent, MessageId: identity,
		Timestamp: time.Now(), Headers: amqp.Table{router.HeaderTaskID: taskID, router.HeaderEvent: "coding:x|y", router.HeaderFHIRVersion: "4.0", router.HeaderFiller: filler},
		Body: []byte(`{"resourceType":"Bundle","type":"message"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func startWorker(t *testing.T, topo router.Topology, filler, url string, sink Sink, retry RetryPolicy) {
	t.Helper()
	a, err := NewHTTP(HTTPConfig{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(WorkerConfig{
		AMQPURL: brokertest.URL(t), Queue: topo.FillerQueue(filler), DeadExchange: topo.DeadExchange(), DeadKey: filler,
		Filler: filler, Adapter: a, Sink: sink, Retry: retry,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

var fastRetry = RetryPolicy{MaxAttempts: 5, Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}

func TestWorkerRetriesUntilTheFillerRecovers(t *testing.T) {
	topo, ch := fixture(t, "lab")
	var calls atomic.Int32
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"message","entry":[]}`))
	}))
	defer filler.Close()
	sink := newSink()
	startWorker(t, topo, "lab", filler.URL, sink, fastRetry)
	route(t, ch, topo, "lab", "task-1")
	wait.Until(t, "the delivery", 20*time.Second, func() bool { d, _ := sink.counts(); return d == 1 })
	if calls.Load() != 4 {
		t.Errorf("%d attempts, want 4 (three 503s, then 200)", calls.Load())
	}
	if sink.responses != 1 || sink.delivered[0].TaskID != "task-1" || sink.delivered[0].Identity != "id-task-1" {
		t.Errorf("delivered %+v with %d responses", sink.delivered, sink.responses)
	}
}

func TestWorkerParksPermanentAndExhaustedFailures(t *testing.T) {
	topo, ch := fixture(t, "lab")
	var calls atomic.Int32
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Correlation-ID") == "id-bad" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer filler.Close()
	sink := newSink()
	startWorker(t, topo, "lab", filler.URL, sink, fastRetry)
	route(t, ch, topo, "lab", "bad")
	route(t, ch, topo, "lab", "down")
	wait.Until(t, "both messages parked", 20*time.Second, func() bool { _, p := sink.counts(); return p == 2 })
	if calls.Load() != 1+5 {
		t.Errorf("%d attempts, want 6: one for the 400, five for the 500s", calls.Load())
	}
	var dead []amqp.Delivery
	wait.Until(t, "the dead-letter queue", 20*time.Second, func() bool {
		d, ok, err := ch.Get(topo.DeadQueue("lab"), true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			dead = append(dead, d)
		}
		return len(dead) == 2
	})
	for _, d := range dead {
		if d.Headers[router.HeaderParkReason] == nil || d.Headers[router.HeaderTaskID] == nil || d.MessageId == "" {
			t.Errorf("parked message lacks its reason or ids: %v", d.Headers)
		}
	}
	if n := dead[1].Headers[HeaderAttempts]; fmt.Sprint(n) != "5" {
		t.Errorf("attempts header %v, want 5", n)
	}
}

func TestAFailingFillerDoesNotDelayAnother(t *testing.T) {
	topo, ch := fixture(t, "slow", "lab")
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer healthy.Close()
	brokenSink, healthySink := newSink(), newSink()
	startWorker(t, topo, "slow", broken.URL, brokenSink, RetryPolicy{MaxAttempts: 10, Initial: time.Second, Max: time.Second})
	startWorker(t, topo, "lab", healthy.URL, healthySink, fastRetry)
	for i := range 5 {
		route(t, ch, topo, "slow", fmt.Sprintf("s-%d", i))
	}
	start := time.Now()
	for i := range 20 {
		route(t, ch, topo, "lab", fmt.Sprintf("l-%d", i))
	}
	wait.Until(t, "the healthy filler's messages", 20*time.Second, func() bool { d, _ := healthySink.counts(); return d == 20 })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the healthy filler took %v while the other was failing", took)
	}
	if d, p := brokenSink.counts(); d != 0 || p != 0 {
		t.Errorf("the failing filler delivered %d, parked %d already", d, p)
	}
}

func TestWorkerDropsCancelledTasks(t *testing.T) {
	topo, ch := fixture(t, "lab")
	var calls atomic.Int32
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer filler.Close()
	sink := newSink()
	sink.cancelled["gone"] = true
	startWorker(t, topo, "lab", filler.URL, sink, fastRetry)
	route(t, ch, topo, "lab", "gone")
	route(t, ch, topo, "lab", "kept")
	wait.Until(t, "the kept message", 20*time.Second, func() bool { d, _ := sink.counts(); return d == 1 })
	if calls.Load() != 1 || sink.delivered[0].TaskID != "kept" {
		t.Errorf("%d deliveries: %+v", calls.Load(), sink.delivered)
	}
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second}.withDefaults()
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			if d := p.backoff(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	topo, ch := fixture(t, "lab")
	var inFlight, peak atomic.Int32
	filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer filler.Close()
	sink := newSink()
	a, _ := NewHTTP(HTTPConfig{URL: filler.URL})
	w := NewWorker(WorkerConfig{AMQPURL: brokertest.URL(t), Queue: topo.FillerQueue("lab"), DeadExchange: topo.DeadExchange(), DeadKey: "lab",
		Filler: "lab", Adapter: a, Sink: sink, Retry: fastRetry, Concurrency: 8})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := range 16 {
		route(t, ch, topo, "lab", fmt.Sprintf("c-%d", i))
	}
	wait.Until(t, "16 deliveries", 20*time.Second, func() bool { d, _ := sink.counts(); return d == 16 })
	if p := peak.Load(); p < 2 || p > 8 {
		t.Errorf("peak of %d deliveries at once, want between 2 and 8", p)
	}
}

// A message whose identity HTTP cannot carry in X-Correlation-ID (a NUL, a
// line break: the broker takes them in message_id) can never be delivered
// as built: it is parked at once with its reason, never sent nor retried,
// and the filler's next message follows it.
func TestWorkerParksAnIdentityHTTPCannotCarryAtOnce(t *testing.T) {
	for name, identity := range map[string]string{"NUL": "id-\x00-poison", "newline": "id-\n-poison"} {
		t.Run(name, func(t *testing.T) {
			topo, ch := fixture(t, "lab")
			sink := newSink()
			filler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sink.note("request " + r.Header.Get("X-Correlation-ID"))
				w.WriteHeader(http.StatusAccepted)
			}))
			defer filler.Close()
			// Retries far apart: one would hold the next message for a minute.
			startWorker(t, topo, "lab", filler.URL, sink, RetryPolicy{MaxAttempts: 8, Initial: time.Minute, Max: time.Minute})
			routeIdentity(t, ch, topo, "lab", "poison", identity)
			route(t, ch, topo, "lab", "next")
			wait.Until(t, "the next message delivered", 20*time.Second, func() bool { d, _ := sink.counts(); return d == 1 })

			want := []string{"parked poison", "request id-next", "delivered next"}
			if got := sink.sequence(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events %q, want %q: the poison parked first, never sent, then the next message delivered", got, want)
			}
			sink.mu.Lock()
			reason := sink.parked["poison"]
			sink.mu.Unlock()
			if !strings.Contains(reason, "X-Correlation-ID") || !strings.Contains(reason, "control character") {
				t.Errorf("park reason %q does not say the identity cannot travel in X-Correlation-ID", reason)
			}
			var dead amqp.Delivery
			wait.Until(t, "the dead-letter queue", 20*time.Second, func() bool {
				d, ok, err := ch.Get(topo.DeadQueue("lab"), true)
				if err != nil {
					t.Fatal(err)
				}
				dead = d
				return ok
			})
			if dead.MessageId != identity || fmt.Sprint(dead.Headers[router.HeaderParkReason]) != reason || fmt.Sprint(dead.Headers[HeaderAttempts]) != "1" {
				t.Errorf("parked message: id %q, reason %v, attempts %v; want the identity, %q, 1", dead.MessageId,
					dead.Headers[router.HeaderParkReason], dead.Headers[HeaderAttempts], reason)
			}
		})
	}
}
