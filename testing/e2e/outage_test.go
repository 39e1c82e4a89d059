package e2e

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBrokerStoppedAndRestarted stops the broker itself (a node of its own)
// under a running gateway: messages are still accepted while it is down, and
// every accepted message is in the filler queue once it is back.
func TestBrokerStoppedAndRestarted(t *testing.T) {
	ctx := context.Background()
	node, err := brokertest.StartNode(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close(context.Background()) })
	h := newHarnessAt(t, node.URL())
	p := start(t, h.bin, h.config)
	waitReady(t, h.base, p)

	post := func(n int) int {
		resp, err := http.Post(h.base+"/fhir/$process-message?async=true", "application/fhir+json", bytes.NewReader(message(n)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 10 {
		if s := post(i); s != http.StatusAccepted {
			t.Fatalf("before the outage: %d", s)
		}
	}
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h.base+"/readyz", http.StatusServiceUnavailable)
	for i := 10; i < 30; i++ {
		if s := post(i); s != http.StatusAccepted {
			t.Fatalf("message %d while the broker is stopped: %d", i, s)
		}
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h.base+"/readyz", http.StatusOK)

	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(ids) < 30 && time.Now().Before(deadline) {
		d, ok, err := ch.Get(h.queue(), true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ids[d.MessageId] = true
	}
	if len(ids) != 30 {
		t.Fatalf("%d of the 30 accepted messages are in the queue after the broker came back\n%s", len(ids), p.log)
	}
}

func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	if !wait.For(60*time.Second, func() bool {
		r, err := http.Get(url)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == status
	}) {
		t.Fatalf("%s never answered %d", url, status)
	}
}
