package router_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
)

// scriptedHandler answers by the message body: "park", "retry-once", else a
// reply echoing the body. It records what it saw.
type scriptedHandler struct {
	mu    sync.Mutex
	seen  []router.Inbound
	tried map[string]int
}

func (h *scriptedHandler) Handle(_ context.Context, m router.Inbound) router.Answer {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.Body = append([]byte(nil), m.Body...)
	h.seen = append(h.seen, m)
	body := string(m.Body)
	h.tried[body]++
	switch {
	case body == "park":
		return router.Answer{Park: "told to park"}
	case body == "retry-once" && h.tried[body] == 1:
		return router.Answer{RetryAfter: 50 * time.Millisecond}
	}
	return router.Answer{Reply: amqp.Publishing{Body: []byte("answer to " + body), Headers: amqp.Table{router.HeaderStatus: int32(202)}}}
}

func (h *scriptedHandler) count(body string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tried[body]
}

func startIngress(t *testing.T, topo router.Topology, h router.IngressHandler) *router.Ingress {
	t.Helper()
	return startIngressAt(t, brokertest.URL(t), topo, h)
}

func startIngressAt(t *testing.T, url string, topo router.Topology, h router.IngressHandler) *router.Ingress {
	t.Helper()
	in := router.NewIngress(router.IngressConfig{URL: url, Topology: topo, Handler: h, Concurrency: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = in.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if !wait.For(30*time.Second, in.Ready) {
		t.Fatal("the ingress did not start consuming")
	}
	return in
}

// The ingress contract: the answer goes to reply_to with the message's
// correlation_id before the message is acknowledged; a park goes to the dead
// queue with its reason; a missing reply queue parks; a retry comes back.
func TestIngressSettlesEveryMessage(t *testing.T) {
	topo := topology(t)
	h := &scriptedHandler{tried: map[string]int{}}
	startIngress(t, topo, h)
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	replies := brokertest.Name(t, "replies")
	if _, err := ch.QueueDeclare(replies, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	out, err := router.NewConfirmer(brokertest.Dial(t))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(body, replyTo, cid string) {
		t.Helper()
		if err := out.Publish(t.Context(), topo.IngressExchange(), "any-key", amqp.Publishing{Body: []byte(body), ReplyTo: replyTo, CorrelationId: cid, UserId: "guest"}); err != nil {
			t.Fatal(err)
		}
	}
	publish("hello", replies, "c1")
	publish("retry-once", replies, "c2")
	publish("park", replies, "c3")
	publish("lost", "no-such-queue-"+replies, "c4")

	got := map[string]string{}
	wait.For(10*time.Second, func() bool {
		for {
			d, ok, err := ch.Get(replies, true)
			if err != nil || !ok {
				break
			}
			got[d.CorrelationId] = fmt.Sprintf("%s %v", d.Body, d.Headers[router.HeaderStatus])
		}
		return len(got) >= 2
	})
	if got["c1"] != "answer to hello 202" || got["c2"] != "answer to retry-once 202" || len(got) != 2 {
		t.Errorf("replies: %v", got)
	}
	if h.count("retry-once") != 2 {
		t.Errorf("a retried message was handled %d times", h.count("retry-once"))
	}
	parked := map[string]string{}
	wait.For(10*time.Second, func() bool {
		for {
			d, ok, err := ch.Get(topo.IngressDeadQueue(), true)
			if err != nil || !ok {
				break
			}
			parked[string(d.Body)] = fmt.Sprint(d.Headers[router.HeaderParkReason], "|", d.Headers[router.HeaderUserID])
		}
		return len(parked) >= 2
	})
	if parked["park"] != "told to park|guest" || !strings.Contains(parked["lost"], "does not exist") {
		t.Errorf("parked: %v", parked)
	}
	if q, err := ch.QueueDeclarePassive(topo.IngressQueue(), true, false, false, false, amqp.Table{"x-queue-type": "quorum",
		"x-delivery-limit": router.DefaultDeliveryLimit, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": topo.IngressDeadQueue()}); err != nil || q.Messages != 0 {
		t.Errorf("the ingress queue still holds %d messages (%v)", q.Messages, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[0].UserID != "guest" || h.seen[0].CorrelationID != "c1" || h.seen[0].ReplyTo != replies {
		t.Errorf("the handler saw %+v", h.seen[0])
	}
}

func TestConfirmerTellsEachPublishsFate(t *testing.T) {
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := brokertest.Name(t, "q")
	if _, err := ch.QueueDeclare(q, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	out, err := router.NewConfirmer(conn)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the fates alternate: a return is never taken for the next publish's
		if err := out.Publish(t.Context(), "", q, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatalf("%d: to an existing queue: %v", i, err)
		}
		if err := out.Publish(t.Context(), "", q+"-missing", amqp.Publishing{Body: []byte("x")}); !errors.Is(err, router.ErrReturned) {
			t.Fatalf("%d: to a missing queue: %v", i, err)
		}
	}
	if err := out.Publish(t.Context(), "no-such-exchange", "", amqp.Publishing{Body: []byte("x")}); err == nil {
		t.Fatal("a publish to a missing exchange succeeded")
	}
	if err := out.Publish(t.Context(), "", q, amqp.Publishing{Body: []byte("x")}); err == nil {
		t.Fatal("a publish on the closed channel succeeded")
	}
}

// Messages of one conversation (one correlation_id) are handled in the
// order they were published, while others go on beside them.
func TestIngressKeepsAConversationInOrder(t *testing.T) {
	topo := topology(t)
	h := &scriptedHandler{tried: map[string]int{}}
	startIngress(t, topo, h)
	out, err := router.NewConfirmer(brokertest.Dial(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		for _, cid := range []string{"conv", fmt.Sprintf("other-%d", i)} {
			if err := out.Publish(t.Context(), topo.IngressExchange(), "", amqp.Publishing{Body: []byte(fmt.Sprint(i)), CorrelationId: cid}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !wait.For(10*time.Second, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.seen) == 2*n }) {
		t.Fatal("not every message was handled")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	next := 0
	for _, m := range h.seen {
		if m.CorrelationID != "conv" {
			continue
		}
		if string(m.Body) != fmt.Sprint(next) {
			t.Fatalf("conversation message %s handled where %d was due", m.Body, next)
		}
		next++
	}
}

// After the broker connection drops, even with nothing to consume, the
// ingress reconnects and consumes again.
func TestIngressConsumesAgainAfterAnOutage(t *testing.T) {
	topo := topology(t)
	h := &scriptedHandler{tried: map[string]int{}}
	proxy := brokertest.NewProxy(t)
	in := startIngressAt(t, proxy.URL(), topo, h)
	proxy.Cut()
	if !wait.For(10*time.Second, func() bool { return !in.Ready() }) {
		t.Fatal("the ingress still says it is ready with its connection cut")
	}
	proxy.Restore()
	if !wait.For(30*time.Second, in.Ready) {
		t.Fatal("the ingress did not reconnect")
	}
	out, err := router.NewConfirmer(brokertest.Dial(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Publish(t.Context(), topo.IngressExchange(), "", amqp.Publishing{Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if !wait.For(10*time.Second, func() bool { return h.count("after") == 1 }) {
		t.Fatal("a message published after the outage was not handled")
	}
}
