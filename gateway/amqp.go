package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// Ingress is the handler of the AMQP ingress: a message published to the
// ingress exchange goes through the same pipeline as an HTTP POST with
// async=true, and every answer for it goes to its reply_to with its
// correlation_id.
func (g *Gateway) Ingress() router.IngressHandler { return ingressHandler{g} }

type ingressHandler struct{ g *Gateway }

// Handle answers one inbound message. Its sender is the partner whose
// amqpUser is the message's user_id (which RabbitMQ verified); its reply_to
// must be that partner's reply queue (see replyQueueAllowed).
func (h ingressHandler) Handle(ctx context.Context, m router.Inbound) router.Answer {
	g := h.g
	p, authErr := g.auth.amqpPartner(m.UserID)
	if m.ReplyTo != "" && !g.replyQueueAllowed(p, m.ReplyTo) {
		// Parked, not answered: the answer could land in someone else's queue.
		g.log.Warn("ingress message with a reply_to its sender may not use", zap.String("userId", m.UserID))
		why := fmt.Sprintf("reply_to %q is not the sender's reply queue", m.ReplyTo)
		if authErr != nil {
			why += "; and " + authErr.Issues[0].Diagnostics
		}
		return router.Answer{Park: why}
	}
	r := g.ingressReply(ctx, m, p, authErr)
	if r.Status == http.StatusServiceUnavailable {
		// The message is handled again after the wait a 503 asks of an HTTP caller.
		return router.Answer{RetryAfter: max(r.RetryAfter, time.Second)}
	}
	a := router.Answer{Reply: g.publishing(r)}
	if m.ReplyTo == "" && r.Status >= 400 {
		a.Park = fmt.Sprintf("rejected with status %d and no reply_to to say so: %s", r.Status, diagnostics(r))
	}
	return a
}

// ingressReply runs the checks HTTP's edge makes, then the pipeline.
func (g *Gateway) ingressReply(ctx context.Context, m router.Inbound, p *partner, authErr *Error) reply {
	if authErr != nil {
		return g.errorReply(authErr)
	}
	v := g.version
	if m.ContentType != "" {
		var e *Error
		if v, e = g.versionOf(m.ContentType); e != nil {
			return g.errorReply(e)
		}
	}
	if len(m.Body) > g.cfg.HTTP.MaxBodyBytes {
		return g.errorReply(tooLarge(g.cfg.HTTP.MaxBodyBytes))
	}
	s := ack.Submission{Body: m.Body, Version: v, From: party(p), Async: true, CorrelationID: m.CorrelationID}
	if m.ReplyTo != "" {
		s.ReplyTo = ack.ReplyURL(m.ReplyTo, m.CorrelationID)
	}
	return g.submit(ctx, s)
}

// replyQueueAllowed reports whether the gateway may publish answers for p
// to queue: p's own reply queue; with authentication off, any queue that is
// not the gateway's; for a sender that is no partner (answered 401), any
// queue outside the gateway's namespace, so that nobody can make the
// gateway publish into a partner's reply queue.
func (g *Gateway) replyQueueAllowed(p *partner, queue string) bool {
	switch {
	case g.topology.Owns(queue):
		return false
	case p != nil:
		return queue == g.topology.ReplyQueue(p.ID)
	case g.auth.disabled:
		return true
	}
	return !g.topology.InNamespace(queue)
}

// publishing is r as an AMQP message: the status and location in headers.
func (g *Gateway) publishing(r reply) amqp.Publishing {
	headers := amqp.Table{router.HeaderStatus: int32(r.Status), router.HeaderLocation: r.Location}
	if r.Duplicate {
		headers[router.HeaderDuplicate] = true
	}
	return amqp.Publishing{ContentType: r.ContentType, MessageId: g.newID(), Timestamp: g.now(), Body: r.Body, Headers: headers}
}

// diagnostics is the first issue's diagnostics of an error reply.
func diagnostics(r reply) string {
	if r.Err != nil && len(r.Err.Issues) > 0 {
		return r.Err.Issues[0].Diagnostics
	}
	return http.StatusText(r.Status)
}

// Publisher publishes one message and waits for the broker to hold it.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// NewReplier returns what the Pusher uses to deliver answers to AMQP
// placers: each is published to the reply queue with the placer's
// correlation_id, status 200 and the location of the stored answer.
func NewReplier(pub Publisher, cfg Config, now func() time.Time) ack.Replier {
	if now == nil {
		now = time.Now
	}
	return amqpReplier{pub: pub, base: cfg.PublicBase(), now: now}
}

type amqpReplier struct {
	pub  Publisher
	base string
	now  func() time.Time
}

// Reply publishes one answer and waits for the broker to hold it.
func (r amqpReplier) Reply(ctx context.Context, a ack.Reply) error {
	v, _ := envelope.ParseVersion(a.FHIRVersion)
	return r.pub.Publish(ctx, "", a.Queue, amqp.Publishing{
		ContentType: contentType(v), DeliveryMode: amqp.Persistent, MessageId: a.BundleID, CorrelationId: a.CorrelationID,
		Timestamp: r.now(), Body: a.Body, Headers: amqp.Table{
			router.HeaderStatus: int32(http.StatusOK), router.HeaderLocation: r.base + "/Bundle/" + a.BundleID,
			router.HeaderTaskID: a.TaskID,
		},
	})
}
