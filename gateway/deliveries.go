package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/adapters"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// Sink is what the gateway's filler workers report to: deliveries move the
// Task to received and feed the filler's synchronous answers into the same
// correlation as POSTed responses; a parked message fails its Task and the
// placer gets a transient-error response.
func (g *Gateway) Sink() adapters.Sink { return deliverySink{g} }

type deliverySink struct{ g *Gateway }

var _ adapters.Sink = deliverySink{}

// Deliverable is false for a cancelled task.
func (s deliverySink) Deliverable(ctx context.Context, taskID string) (bool, error) {
	m, err := s.g.ledger.Task(ctx, taskID, ledger.Anyone)
	if errors.Is(err, ledger.ErrNotFound) {
		return true, nil // forgotten after the duplicate window: still owed
	}
	if err != nil {
		return false, err
	}
	return m.Status != ledger.StatusCancelled, nil
}

// Delivered records what the filler answered in the exchange, which moves
// the Task on; a delivery without an answer moves it to received.
func (s deliverySink) Delivered(ctx context.Context, m adapters.Message, res adapters.Result) error {
	g := s.g
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	answered := false
	for _, body := range res.Responses {
		msg, err := g.parser.Parse(body, v)
		if err != nil || !msg.IsResponse() {
			g.log.Warn("a filler answered with something that is not a response message; ignored",
				zap.String("taskId", m.TaskID), zap.String("filler", m.Filler), zap.String("rule", ruleOf(err)))
			continue
		}
		// It answers the message delivered, unless it quotes another one of
		// the filler's.
		if quoted := msg.Header.Response.Identifier; quoted.Value == m.Identity || quoted.String() == m.Identity {
			err = g.recordFor(ctx, m.TaskID, msg)
		} else {
			err = g.recordResponse(ctx, "", ledger.FillerScope([]string{m.Filler}), msg)
		}
		switch {
		case err == nil || errors.Is(err, ledger.ErrDuplicate):
			answered = true
		case errors.Is(err, ErrUnmatched):
			// logged by recordResponse
		default:
			return err
		}
	}
	if answered {
		return nil // the answer moved the Task past received
	}
	_, err := g.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeDelivered, Detail: m.Filler},
		ledger.From(ledger.StatusReceived, "delivered to "+m.Filler, ledger.StatusRequested))
	return err
}

// Parked fails the Task (unless it already ended: a result another filler
// delivered stands) and answers the placer with a transient-error response
// that says why.
func (s deliverySink) Parked(ctx context.Context, m adapters.Message, reason string) error {
	g := s.g
	business := fmt.Sprintf("delivery to %s failed: %s", m.Filler, reason)
	a, err := g.ledger.Apply(ctx, m.TaskID, ledger.Change{Kind: ledger.ChangeParked, Detail: m.Filler}, func(current ledger.Status) (ledger.Status, string) {
		if current.Terminal() {
			return "", ""
		}
		return ledger.StatusFailed, business
	})
	if err != nil || !a.Changed {
		return err
	}
	return g.answerPlacer(ctx, m.TaskID, m.Body, m.FHIRVersion, envelope.ResponseTransientError, business)
}

// answerPlacer records a response the gateway itself gives the placer, as
// it records a filler's, so that it shows in the Task and reaches the placer.
func (g *Gateway) answerPlacer(ctx context.Context, taskID string, request []byte, version string, code envelope.ResponseCode, why string) error {
	v, _ := envelope.ParseVersion(version)
	req, err := g.parser.Parse(request, v)
	if err != nil {
		return fmt.Errorf("gateway: the request of Task/%s no longer parses: %w", taskID, err)
	}
	oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: envelope.IssueType("transient"), Diagnostics: why})
	body, err := g.responder.Response(req, code, &oo)
	if err != nil {
		return err
	}
	resp, err := g.parser.Parse(body, v)
	if err != nil {
		return fmt.Errorf("gateway: its own response does not parse: %w", err)
	}
	return g.recordFor(ctx, taskID, resp)
}

// recordFor records a response the gateway has in hand for a known task
// (see record).
func (g *Gateway) recordFor(ctx context.Context, taskID string, msg *envelope.Message) error {
	req, err := g.ledger.Task(ctx, taskID, ledger.Anyone)
	if err != nil {
		return err
	}
	_, err = g.record(ctx, "", req, msg)
	return err
}
