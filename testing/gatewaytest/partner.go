package gatewaytest

import (
	"context"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Partner is an AMQP partner of a test gateway: a connection under its own
// RabbitMQ user (created with the permissions `fhirgw partner-user`
// prints), publishing to the ingress and consuming its reply queue.
type Partner struct {
	// User is the partner's RabbitMQ user; URL connects as it.
	User, URL string
	// ReplyTo is the partner's reply queue.
	ReplyTo string
	out     *router.Confirmer
	replies <-chan amqp.Delivery
	ingress string
}

// Partner connects as the AMQP user of the configured partner id, creating
// the user (deleted when the test ends).
func (s *Stack) Partner(t testing.TB, id string) *Partner {
	t.Helper()
	perms, err := s.Config.PartnerPermissions(id)
	if err != nil {
		t.Fatal(err)
	}
	const password = "partner-secret"
	brokertest.AddUser(t, perms.User, password, brokertest.Permissions{Configure: perms.Configure, Write: perms.Write, Read: perms.Read})
	p := &Partner{User: perms.User, URL: brokertest.UserURL(t, perms.User, password), ReplyTo: s.Topology.ReplyQueue(id), ingress: s.Topology.IngressExchange()}
	conn, err := amqp.DialConfig(p.URL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "partner " + id}})
	if err != nil {
		t.Fatalf("partner %s: dial: %v", id, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if p.out, err = router.NewConfirmer(conn); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if p.replies, err = ch.Consume(p.ReplyTo, "", true, true, false, false, nil); err != nil {
		t.Fatalf("partner %s: consume %s: %v", id, p.ReplyTo, err)
	}
	return p
}

// Publish publishes msg to the ingress as it is (user_id, reply_to and all)
// and returns the broker's verdict.
func (p *Partner) Publish(msg amqp.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.out.Publish(ctx, p.ingress, "", msg)
}

// Send publishes a message Bundle as the partner: its user_id, its reply
// queue and correlationID.
func (p *Partner) Send(t testing.TB, body []byte, correlationID string) {
	t.Helper()
	err := p.Publish(amqp.Publishing{ContentType: "application/fhir+json", DeliveryMode: amqp.Persistent,
		UserId: p.User, ReplyTo: p.ReplyTo, CorrelationId: correlationID, Body: body})
	if err != nil {
		t.Fatalf("partner %s: publish: %v", p.User, err)
	}
}

// Await returns the next answer on the reply queue with correlationID
// (skipping others), failing the test after wait.
func (p *Partner) Await(t testing.TB, correlationID string, wait time.Duration) amqp.Delivery {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case d, ok := <-p.replies:
			if !ok {
				t.Fatalf("partner %s: the reply queue consumer closed", p.User)
			}
			if d.CorrelationId == correlationID {
				return d
			}
		case <-timeout:
			t.Fatalf("partner %s: no answer with correlation_id %s within %v", p.User, correlationID, wait)
		}
	}
}

// Status is an answer's HTTP-equivalent status (header fhirgw-status).
func Status(d amqp.Delivery) int { return router.StatusOf(d.Headers) }
