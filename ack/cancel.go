package ack

import (
	"context"
	"fmt"
	"net/http"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// cancelBeforeDelivery handles a message whose event is a route's
// cancelEvent. It looks for the order it cancels (by its focus) among the
// sender's own orders only: none is refused with ErrNoSuchOrder and the
// cancellation is never routed. When the order still waits for delivery to
// fillers the gateway delivers itself, it is cancelled and never
// delivered, and the cancellation is answered 200. decided is false when
// the message must be routed to the filler, whose answer decides (the order
// was delivered, or its filler consumes its queue itself); order is then
// the order it cancels.
func (c *Core) cancelBeforeDelivery(ctx context.Context, from Party, msg *envelope.Message) (o Outcome, err error, decided bool, order *ledger.Message) {
	if prior, err := c.ledger.ByIdentity(ctx, msg.Identity.Key(), from.asPlacer()); err == nil {
		return replayed(prior), nil, true, nil // a cancellation sent again
	}
	orders, err := c.ledger.ByFocusKey(ctx, FocusKeys(msg), from.asPlacer())
	if err != nil {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later"), true, nil
	}
	if len(orders) == 0 {
		c.log.Info("cancellation matches no order of its sender", zap.String("identity", msg.Identity.Key()), zap.String("partner", from.ID))
		return Outcome{}, reject(ErrNoSuchOrder, envelope.IssueNotFound, "Bundle.entry[0].resource.focus",
			"the cancellation matches no order of yours in the gateway's custody; it was not routed"), true, nil
	}
	order = orders[0]
	if order.Status != ledger.StatusRequested || !c.drivesAll(order.Fillers) {
		return Outcome{}, nil, false, order
	}
	why := fmt.Sprintf("cancelled by message %s before delivery", msg.Identity.Key())
	// One decision with the delivery (see ledger.CancelUndelivered): either
	// no filler has it and it is stopped, or it is delivered and the
	// cancellation goes to the filler.
	a, err := c.ledger.CancelUndelivered(ctx, order.TaskID, ledger.Change{Kind: ledger.ChangeCancelled, Partner: from.ID, Detail: msg.Identity.Key()}, why)
	if err != nil {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later"), true, nil
	}
	if !a.Changed {
		return Outcome{}, nil, false, order
	}
	c.log.Info("order cancelled before delivery", zap.String("taskId", order.TaskID), zap.String("by", msg.Identity.Key()))
	return c.recordCancellation(ctx, from, msg, order), nil, true, nil
}

// decideCancellation applies a filler's answer to a cancellation routed to
// it (cancel) to the order it cancels: ok cancels the order (its filler's
// delivery, in a fan-out); fatal-error refuses it, and the order goes on,
// its businessStatus saying so. Other answers decide nothing.
func (c *Core) decideCancellation(ctx context.Context, sender, filler string, cancel *ledger.Message, code envelope.ResponseCode) {
	change := ledger.Change{Kind: ledger.ChangeCancelled, Partner: sender, Detail: cancel.TaskID, Filler: filler}
	by := filler
	if by == "" { // an answer not told apart by filler: the cancellation's
		by = joinFillers(cancel.Fillers)
	}
	var move ledger.Move
	switch code {
	case envelope.ResponseOK:
		why := "cancelled by message " + cancel.Identity + ", confirmed by " + by
		move = func(current ledger.Status) (ledger.Status, string) {
			if current.Terminal() {
				return "", ""
			}
			return ledger.StatusCancelled, why
		}
	case envelope.ResponseFatalError:
		change.Kind = ledger.ChangeStatus
		why := "cancellation by message " + cancel.Identity + " refused by " + by
		move = func(current ledger.Status) (ledger.Status, string) {
			if current.Terminal() {
				return "", ""
			}
			return "", why
		}
	default:
		return
	}
	a, err := c.ledger.Apply(ctx, cancel.Cancels, change, move)
	if err != nil {
		c.log.Warn("applying a filler's answer to a cancellation failed", zap.String("taskId", cancel.Cancels), zap.Error(err))
		return
	}
	if a.Changed {
		c.log.Info("the filler decided a cancellation", zap.String("taskId", cancel.Cancels), zap.String("cancellation", cancel.TaskID),
			zap.String("code", string(code)), zap.String("status", string(a.Status)))
	}
}

// recordCancellation keeps the cancellation message, with its answer, so
// that a resend of it is answered the same.
func (c *Core) recordCancellation(ctx context.Context, from Party, msg *envelope.Message, order *ledger.Message) Outcome {
	a := ledger.Answer{Status: http.StatusOK, ContentType: msg.Version.MediaType(),
		Body: envelope.Information(fmt.Sprintf("Task/%s (message %s) was cancelled before it was delivered", order.TaskID, order.Identity))}
	taskID := c.newID()
	m := &ledger.Message{
		TaskID: taskID, Identity: msg.Identity.Key(), Placer: from.ID, BundleID: msg.BundleID, HeaderID: msg.Header.ID,
		FHIRVersion: msg.Version.String(), Event: msg.Header.Event.Key(), Body: msg.Raw,
		Status: ledger.StatusCompleted, BusinessStatus: "cancelled Task/" + order.TaskID, Answer: a,
	}
	if err := c.ledger.Accept(ctx, m); err != nil {
		c.log.Warn("recording a cancellation failed", zap.String("taskId", order.TaskID), zap.Error(err))
	}
	return Outcome{Kind: KindCancellation, Answer: a, TaskID: taskID}
}

// drivesAll reports whether the gateway delivers to every filler itself,
// so that it can still hold a message back.
func (c *Core) drivesAll(fillers []string) bool {
	for _, id := range fillers {
		if !c.cfg.Driven(id) {
			return false
		}
	}
	return len(fillers) > 0
}
