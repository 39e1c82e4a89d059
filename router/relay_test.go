package router_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/ledgertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMain(m *testing.M) { brokertest.Main(m) }

func accept(t *testing.T, l *ledger.SQLite, n int, fillers ...string) *ledger.Message {
	t.Helper()
	m := &ledger.Message{
		TaskID: fmt.Sprintf("task-%d", n), Identity: fmt.Sprintf("id-%d", n), FHIRVersion: "4.0",
		Event: "coding:https://fhirgw.example/fhir/message-events|lab-order", Fillers: fillers,
		Body:   []byte(fmt.Sprintf("{\"resourceType\":\"Bundle\",  \"id\": \"b-%d\"}\n", n)), // odd spacing: bytes must pass untouched
		Status: "requested", Answer: ledger.Answer{Status: 202},
	}
	if err := l.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func startRelay(t *testing.T, url string, l *ledger.SQLite, topo router.Topology) *router.Relay {
	t.Helper()
	return runRelay(t, router.RelayConfig{URL: url, Outbox: gateway.LedgerOutbox{Ledger: l}, Topology: topo, Poll: 50 * time.Millisecond})
}

// runRelay runs a relay with cfg until the test ends.
func runRelay(t *testing.T, cfg router.RelayConfig) *router.Relay {
	t.Helper()
	r := router.NewRelay(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// topology gives the test its own exchanges and queues, deleted afterwards.
func topology(t *testing.T, fillers ...string) router.Topology {
	t.Helper()
	topo := router.Topology{Prefix: brokertest.Name(t, "gw"), Fillers: fillers}
	t.Cleanup(func() {
		conn := brokertest.Dial(t)
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		if err := topo.Delete(ch); err != nil {
			t.Log(err)
		}
	})
	return topo
}

// drain reads every message now in queue.
func drain(t *testing.T, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func TestRelayDeliversTheOriginalBytesWithTheContractProperties(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab", "archive")
	m1 := accept(t, l, 1, "lab")
	m2 := accept(t, l, 2, "lab", "archive") // fan-out
	r := startRelay(t, brokertest.URL(t), l, topo)
	r.Notify()
	wait.Until(t, "the outbox to empty", 15*time.Second, func() bool { return l.Backlog() == 0 })
	if !r.Ready() {
		t.Error("relay not ready while connected")
	}

	lab := drain(t, topo.FillerQueue("lab"))
	archive := drain(t, topo.FillerQueue("archive"))
	if len(lab) != 2 || len(archive) != 1 {
		t.Fatalf("lab got %d, archive %d; want 2 and 1", len(lab), len(archive))
	}
	for i, want := range []*ledger.Message{m1, m2} {
		d := lab[i]
		if !bytes.Equal(d.Body, want.Body) {
			t.Errorf("body %q, want the original %q", d.Body, want.Body)
		}
		if d.MessageId != want.Identity || d.CorrelationId != want.Identity || d.DeliveryMode != amqp.Persistent ||
			d.ContentType != "application/fhir+json; fhirVersion=4.0" || d.Type != want.Event {
			t.Errorf("properties %+v", d)
		}
		if d.Headers[router.HeaderTaskID] != want.TaskID || d.Headers[router.HeaderEvent] != want.Event ||
			d.Headers[router.HeaderFHIRVersion] != "4.0" || d.Headers[router.HeaderFiller] != "lab" {
			t.Errorf("headers %v", d.Headers)
		}
	}
	if !bytes.Equal(archive[0].Body, m2.Body) {
		t.Error("fan-out copy differs")
	}
	if got, _ := l.Task(context.Background(), m2.TaskID, ledger.Anyone); got.RoutedAt.IsZero() {
		t.Error("task not marked routed after both confirms")
	}
	if n := len(drain(t, topo.UnroutableQueue())); n != 0 {
		t.Errorf("%d messages unroutable", n)
	}
}

func TestRelaySurvivesABrokerOutage(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab")
	proxy := brokertest.NewProxy(t)
	r := startRelay(t, proxy.URL(), l, topo)
	wait.Until(t, "the relay to connect", 15*time.Second, r.Ready)

	proxy.Cut()
	wait.Until(t, "the relay to notice the outage", 15*time.Second, func() bool { return !r.Ready() })
	for i := range 20 {
		accept(t, l, i, "lab")
		r.Notify()
	}
	time.Sleep(300 * time.Millisecond)
	if l.Backlog() != 20 {
		t.Fatalf("backlog %d during the outage, want 20", l.Backlog())
	}
	proxy.Restore()
	wait.Until(t, "the backlog to drain after the broker returns", 30*time.Second, func() bool { return l.Backlog() == 0 })
	got := drain(t, topo.FillerQueue("lab"))
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.MessageId] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct messages in the queue, want 20", len(seen))
	}
}

func TestRelayPublishesAnOfferedDeliveryOnce(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab")
	var offers []router.Delivery
	for i := range 50 {
		m := accept(t, l, i, "lab")
		offers = append(offers, router.Delivery{Seq: m.OutboxSeqs[0], TaskID: m.TaskID, Filler: "lab", Identity: m.Identity, Event: m.Event, FHIRVersion: m.FHIRVersion, Body: m.Body})
	}
	r := startRelay(t, brokertest.URL(t), l, topo)
	// Every delivery is both in the outbox and offered in memory.
	r.Offer(offers[:25]...)
	wait.Until(t, "the outbox to empty", 15*time.Second, func() bool { return l.Backlog() == 0 })
	r.Offer(offers[25:]...) // late offers of deliveries already published
	time.Sleep(300 * time.Millisecond)
	got := drain(t, topo.FillerQueue("lab"))
	if len(got) != 50 {
		t.Fatalf("%d messages in the queue, want each of the 50 exactly once", len(got))
	}
}

// Deliveries committed without an offer or a notification (an offer the
// full hand-over queue dropped) wait for the poll; Drain publishes them all
// now, window after window, and returns once the outbox is empty.
func TestRelayDrainPublishesTheWholeOutbox(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab")
	r := runRelay(t, router.RelayConfig{URL: brokertest.URL(t), Outbox: gateway.LedgerOutbox{Ledger: l}, Topology: topo,
		Window: 16, Poll: time.Hour})
	wait.Until(t, "the relay to connect", 15*time.Second, r.Ready)
	const n = 100 // six windows and a bit
	for i := range n {
		accept(t, l, i, "lab")
	}
	time.Sleep(100 * time.Millisecond)
	if l.Backlog() != n {
		t.Fatalf("backlog %d before the drain, want %d: nothing should publish them until the poll", l.Backlog(), n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Backlog() != 0 {
		t.Fatalf("Drain returned with %d deliveries in the outbox", l.Backlog())
	}
	seen := map[string]bool{}
	for _, d := range drain(t, topo.FillerQueue("lab")) {
		seen[d.MessageId] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages in the queue after the drain, want %d", len(seen), n)
	}
	// An empty outbox drains at once.
	if err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// With the broker away, Drain gives up when its context ends and the
// deliveries stay in the outbox; once Run has returned, Drain says so.
func TestRelayDrainGivesUpWhileTheBrokerIsAway(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab")
	proxy := brokertest.NewProxy(t)
	r := router.NewRelay(router.RelayConfig{URL: proxy.URL(), Outbox: gateway.LedgerOutbox{Ledger: l}, Topology: topo, Poll: 50 * time.Millisecond})
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(stopped) }()
	defer func() { stop(); <-stopped }()
	wait.Until(t, "the relay to connect", 15*time.Second, r.Ready)
	proxy.Cut()
	wait.Until(t, "the relay to notice the outage", 15*time.Second, func() bool { return !r.Ready() })
	for i := range 5 {
		accept(t, l, i, "lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with the broker away: %v, want the context's deadline", err)
	}
	if l.Backlog() != 5 {
		t.Fatalf("backlog %d after a failed drain, want the 5 accepted", l.Backlog())
	}
	stop()
	<-stopped
	if err := r.Drain(context.Background()); err == nil {
		t.Fatal("Drain after Run returned reported success")
	}
}

// No delivery holds up the others. The broker takes a NUL and a line break
// in message_id as they are; an event key too long for the type property (an
// eventCanonical with a long version) goes without it; an identity too long
// for message_id is parked at once in the filler's dead-letter queue with
// its reason, and reported. Each would otherwise end the connection on
// every attempt, and the outbox would never move again.
func TestRelayDoesNotWedgeOnADeliveryItCannotPublishAsIs(t *testing.T) {
	l := ledgertest.Open(t)
	topo := topology(t, "lab")
	long := "canonical:https://fhirgw.example/fhir/EventDefinition/lab-order|" + strings.Repeat("9", 300)
	msgs := []*ledger.Message{
		accept(t, l, 1, "lab"),
		acceptWith(t, l, 2, func(m *ledger.Message) { m.Identity = "id-\x00-nul" }),
		acceptWith(t, l, 3, func(m *ledger.Message) { m.Identity = "id-\n-newline" }),
		acceptWith(t, l, 4, func(m *ledger.Message) { m.Event = long }),
		acceptWith(t, l, 5, func(m *ledger.Message) { m.Identity = strings.Repeat("x", 300) }),
		accept(t, l, 6, "lab"),
	}
	var mu sync.Mutex
	parked := map[string]string{}
	r := runRelay(t, router.RelayConfig{URL: brokertest.URL(t), Outbox: gateway.LedgerOutbox{Ledger: l}, Topology: topo, Poll: 50 * time.Millisecond,
		Parked: func(_ context.Context, d router.Delivery, reason string) error {
			mu.Lock()
			defer mu.Unlock()
			parked[d.TaskID] = reason
			return nil
		}})
	r.Notify()
	wait.Until(t, "the outbox to empty", 15*time.Second, func() bool { return l.Backlog() == 0 })

	lab := drain(t, topo.FillerQueue("lab"))
	var ids []string
	for _, d := range lab {
		ids = append(ids, d.MessageId)
		if d.Headers[router.HeaderTaskID] == msgs[3].TaskID && (d.Type != "" || d.Headers[router.HeaderEvent] != long) {
			t.Errorf("the long event: type %q, header %q; want no type and the event in the header", d.Type, d.Headers[router.HeaderEvent])
		}
	}
	want := []string{msgs[0].Identity, msgs[1].Identity, msgs[2].Identity, msgs[3].Identity, msgs[5].Identity}
	if fmt.Sprintf("%q", ids) != fmt.Sprintf("%q", want) {
		t.Fatalf("filler queue %q, want %q", ids, want)
	}
	dead := drain(t, topo.DeadQueue("lab"))
	if len(dead) != 1 || dead[0].Headers[router.HeaderTaskID] != msgs[4].TaskID || !bytes.Equal(dead[0].Body, msgs[4].Body) {
		t.Fatalf("dead-letter queue %v, want the message with the long identity", dead)
	}
	reason, _ := dead[0].Headers[router.HeaderParkReason].(string)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(reason, "message_id") || parked[msgs[4].TaskID] != reason || len(parked) != 1 {
		t.Errorf("park reason %q, reported %q", reason, parked)
	}
}

// acceptWith is accept to the filler lab with the message changed first.
func acceptWith(t *testing.T, l *ledger.SQLite, n int, change func(*ledger.Message)) *ledger.Message {
	t.Helper()
	m := &ledger.Message{
		TaskID: fmt.Sprintf("task-%d", n), Identity: fmt.Sprintf("id-%d", n), FHIRVersion: "4.0",
		Event: "coding:https://fhirgw.example/fhir/message-events|lab-order", Fillers: []string{"lab"},
		Body: []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":"b-%d"}`, n)), Status: "requested", Answer: ledger.Answer{Status: 202},
	}
	change(m)
	if err := l.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}
