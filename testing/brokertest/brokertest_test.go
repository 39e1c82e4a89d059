package brokertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/testing/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMain(m *testing.M) { brokertest.Main(m) }

// TestBrokerRoundTrip proves the harness gives a working broker: a durable
// quorum queue takes a persistent message with a publisher confirm and hands
// it back with its properties.
func TestBrokerRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	queue := brokertest.Name(t, "q")
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(queue, false, false, false)
		}
	})
	body := []byte(`{"resourceType":"Bundle","type":"message"}`)
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
		ContentType: "application/fhir+json", DeliveryMode: amqp.Persistent, MessageId: "m-1", Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("publish not confirmed: ack=%v err=%v", ok, err)
	}
	var got amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = d
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the confirmed message never reached the queue")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if string(got.Body) != string(body) || got.MessageId != "m-1" || got.ContentType != "application/fhir+json" {
		t.Fatalf("got %q id=%q type=%q", got.Body, got.MessageId, got.ContentType)
	}
	if err := got.Ack(false); err != nil {
		t.Fatal(err)
	}
}

func TestName(t *testing.T) {
	a, b := brokertest.Name(t, "x"), brokertest.Name(t, "x")
	if a == b {
		t.Fatalf("two names alike: %s", a)
	}
}
