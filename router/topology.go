package router

import (
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultDeliveryLimit is how often a filler queue delivers a message before
// dead-lettering it (RabbitMQ 3.10 has no default; 4.x uses 20).
const DefaultDeliveryLimit = 20

// Topology names and declares the gateway's exchanges and queues.
type Topology struct {
	// Prefix starts every name (default "fhirgw"); tests use their own.
	Prefix string
	// Fillers get one queue each.
	Fillers []string
	// Partners with an AMQP user get a reply queue each.
	Partners []string
	// DeliveryLimit is x-delivery-limit on filler queues (default 20).
	DeliveryLimit int
}

func (t Topology) prefix() string {
	if t.Prefix == "" {
		return "fhirgw"
	}
	return t.Prefix
}

// RouteExchange is the topic exchange messages are published to.
func (t Topology) RouteExchange() string { return t.prefix() + ".route" }

// UnroutableExchange is the route exchange's alternate exchange.
func (t Topology) UnroutableExchange() string { return t.prefix() + ".unroutable" }

// UnroutableQueue collects publishes that matched no filler queue.
func (t Topology) UnroutableQueue() string { return t.prefix() + ".unroutable" }

// DeadExchange receives what filler queues dead-letter.
func (t Topology) DeadExchange() string { return t.prefix() + ".dead" }

// FillerQueue is the queue a filler's messages wait in.
func (t Topology) FillerQueue(filler string) string { return t.prefix() + ".filler." + filler }

// DeadQueue parks a filler's dead-lettered messages.
func (t Topology) DeadQueue(filler string) string { return t.FillerQueue(filler) + ".dead" }

// FillerKey is the routing key that reaches a filler's queue.
func (t Topology) FillerKey(filler string) string { return "filler." + filler }

// IngressExchange is where partners and AMQP fillers publish messages.
func (t Topology) IngressExchange() string { return t.prefix() + ".ingress" }

// IngressQueue is the queue the gateway consumes the ingress exchange from.
func (t Topology) IngressQueue() string { return t.prefix() + ".ingress" }

// IngressDeadQueue parks ingress messages that cannot be answered: rejected
// ones without a usable reply_to, and ones that failed too often.
func (t Topology) IngressDeadQueue() string { return t.prefix() + ".ingress.dead" }

// ReplyQueue is the queue a partner's answers are published to; its
// reply_to must name it.
func (t Topology) ReplyQueue(partner string) string { return t.prefix() + ".reply." + partner }

// InNamespace reports whether name starts with the gateway's prefix: one of
// its queues or a partner's reply queue.
func (t Topology) InNamespace(name string) bool { return strings.HasPrefix(name, t.prefix()+".") }

// Owns reports whether queue is one of the gateway's own queues other than
// a reply queue: answers are never published there.
func (t Topology) Owns(queue string) bool {
	p := t.prefix() + "."
	return strings.HasPrefix(queue, p) && !strings.HasPrefix(queue, p+"reply.")
}

// Declare creates the topology (idempotently) on ch.
func (t Topology) Declare(ch *amqp.Channel) error {
	limit := t.DeliveryLimit
	if limit <= 0 {
		limit = DefaultDeliveryLimit
	}
	quorum := amqp.Table{"x-queue-type": "quorum"}
	type step struct {
		what string
		do   func() error
	}
	steps := []step{
		{"unroutable exchange", func() error {
			return ch.ExchangeDeclare(t.UnroutableExchange(), amqp.ExchangeFanout, true, false, false, false, nil)
		}},
		{"unroutable queue", func() error {
			_, err := ch.QueueDeclare(t.UnroutableQueue(), true, false, false, false, quorum)
			return err
		}},
		{"unroutable binding", func() error { return ch.QueueBind(t.UnroutableQueue(), "", t.UnroutableExchange(), false, nil) }},
		{"route exchange", func() error {
			return ch.ExchangeDeclare(t.RouteExchange(), amqp.ExchangeTopic, true, false, false, false,
				amqp.Table{"alternate-exchange": t.UnroutableExchange()})
		}},
		{"dead-letter exchange", func() error {
			return ch.ExchangeDeclare(t.DeadExchange(), amqp.ExchangeDirect, true, false, false, false, nil)
		}},
	}
	steps = append(steps,
		step{"ingress exchange", func() error {
			return ch.ExchangeDeclare(t.IngressExchange(), amqp.ExchangeFanout, true, false, false, false, nil)
		}},
		step{"queue " + t.IngressDeadQueue(), func() error {
			_, err := ch.QueueDeclare(t.IngressDeadQueue(), true, false, false, false, quorum)
			return err
		}},
		step{"queue " + t.IngressQueue(), func() error {
			_, err := ch.QueueDeclare(t.IngressQueue(), true, false, false, false, amqp.Table{
				"x-queue-type":              "quorum",
				"x-delivery-limit":          limit,
				"x-dead-letter-exchange":    "",
				"x-dead-letter-routing-key": t.IngressDeadQueue(),
			})
			return err
		}},
		step{"binding " + t.IngressQueue(), func() error { return ch.QueueBind(t.IngressQueue(), "", t.IngressExchange(), false, nil) }},
	)
	for _, p := range t.Partners {
		steps = append(steps, step{"queue " + t.ReplyQueue(p), func() error {
			_, err := ch.QueueDeclare(t.ReplyQueue(p), true, false, false, false, quorum)
			return err
		}})
	}
	for _, f := range t.Fillers {
		steps = append(steps,
			step{"queue " + t.FillerQueue(f), func() error {
				_, err := ch.QueueDeclare(t.FillerQueue(f), true, false, false, false, amqp.Table{
					"x-queue-type":              "quorum",
					"x-delivery-limit":          limit,
					"x-dead-letter-exchange":    t.DeadExchange(),
					"x-dead-letter-routing-key": f,
				})
				return err
			}},
			step{"binding " + t.FillerQueue(f), func() error { return ch.QueueBind(t.FillerQueue(f), t.FillerKey(f), t.RouteExchange(), false, nil) }},
			step{"queue " + t.DeadQueue(f), func() error {
				_, err := ch.QueueDeclare(t.DeadQueue(f), true, false, false, false, quorum)
				return err
			}},
			step{"binding " + t.DeadQueue(f), func() error { return ch.QueueBind(t.DeadQueue(f), f, t.DeadExchange(), false, nil) }},
		)
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("router: declare %s: %w", s.what, err)
		}
	}
	return nil
}

// Delete removes what Declare creates, messages included; what is already
// gone is skipped. For tests and for decommissioning a gateway.
func (t Topology) Delete(ch *amqp.Channel) error {
	queues := []string{t.UnroutableQueue(), t.IngressQueue(), t.IngressDeadQueue()}
	for _, f := range t.Fillers {
		queues = append(queues, t.FillerQueue(f), t.DeadQueue(f))
	}
	for _, p := range t.Partners {
		queues = append(queues, t.ReplyQueue(p))
	}
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("router: delete queue %s: %w", q, err)
		}
	}
	for _, x := range []string{t.RouteExchange(), t.UnroutableExchange(), t.DeadExchange(), t.IngressExchange()} {
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			return fmt.Errorf("router: delete exchange %s: %w", x, err)
		}
	}
	return nil
}
