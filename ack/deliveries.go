package ack

import (
	"context"
	"errors"
	"fmt"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/adapters"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// Sink is what the filler workers report to: a delivery moves the Task to
// received and feeds the filler's synchronous answers into the same
// correlation as POSTed responses; a parked message fails its Task and the
// placer gets a transient-error response.
func (c *Core) Sink() adapters.Sink { return deliverySink{c} }

type deliverySink struct{ c *Core }

var _ adapters.Sink = deliverySink{}

// Deliverable claims the delivery, false for a cancelled task: one
// decision with a cancellation (see ledger.StartDelivery).
func (s deliverySink) Deliverable(ctx context.Context, m adapters.Message) (bool, error) {
	return s.c.ledger.StartDelivery(ctx, m.TaskID, m.Filler)
}

// Delivered records what the filler answered in the exchange, which moves
// the Task on; a delivery without an answer moves it to received.
func (s deliverySink) Delivered(ctx context.Context, m adapters.Message, res adapters.Result) error {
	c := s.c
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	answered := false
	for _, body := range res.Responses {
		msg, err := c.parser.Parse(body, v)
		if err != nil || !msg.IsResponse() {
			c.log.Warn("a filler answered with something that is not a response message; ignored",
				zap.String("taskId", m.TaskID), zap.String("filler", m.Filler), zap.String("rule", ruleOf(err)))
			continue
		}
		// It answers the message delivered, unless it quotes another one of
		// the filler's.
		if quoted := msg.Header.Response.Identifier; quoted.Value == m.Identity || quoted.String() == m.Identity {
			err = c.recordFor(ctx, m.TaskID, m.Filler, msg)
		} else if req, ferr := c.findRequest(ctx, quoted, ledger.FillerScope([]string{m.Filler})); ferr == nil {
			_, err = c.record(ctx, "", m.Filler, req, msg)
		} else {
			c.log.Info("a filler's answer quotes no message routed to it", zap.String("taskId", m.TaskID), zap.String("filler", m.Filler))
			continue
		}
		if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
			return err
		}
		answered = true
	}
	if answered {
		return nil // the answer moved the Task past received
	}
	_, err := c.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDelivered, Detail: m.Filler, Filler: m.Filler},
		ledger.From(ledger.StatusReceived, "delivered to "+m.Filler, ledger.StatusRequested))
	return err
}

// Parked ends the filler's Task (unless it already ended; in a fan-out
// another filler's result stands, see ledger.Derive) and answers the placer
// with a response that says why: a filler's refusal rejects it and the
// placer hears fatal-error (resending it unchanged cannot help); retries
// run out, or a message that cannot be delivered as built, fail it and the
// placer hears transient-error.
func (s deliverySink) Parked(ctx context.Context, m adapters.Message, why adapters.Parking) error {
	c := s.c
	status, code := ledger.StatusFailed, envelope.ResponseTransientError
	business := fmt.Sprintf("delivery to %s failed: %s", m.Filler, why.Reason)
	if why.Refused {
		status, code = ledger.StatusRejected, envelope.ResponseFatalError
		business = why.Reason // it names the filler
	}
	a, err := c.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeParked, Detail: m.Filler, Filler: m.Filler}, func(current ledger.Status) (ledger.Status, string) {
		if current.Terminal() {
			return "", ""
		}
		return status, business
	})
	if err != nil || !a.Changed {
		return err
	}
	req, err := c.ledger.Task(ctx, m.TaskID, ledger.Anyone)
	if err != nil {
		return err
	}
	return c.answerPlacer(ctx, req, m.Filler, code, business)
}
