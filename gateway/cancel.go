package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// cancelBeforeDelivery handles a message whose event is a route's
// cancelEvent (the caller has checked that it is). It looks for the order
// it cancels (by its focus) among the sender's own orders only: none is a
// 422 and the cancellation is never routed. When the order is still waiting
// for delivery to fillers the gateway delivers itself, it is cancelled and
// never delivered, and the cancellation is answered 200. It reports false
// when the message must be routed like any other (already delivered, or a
// filler that consumes its queue itself).
func (g *Gateway) cancelBeforeDelivery(ctx context.Context, from *partner, msg *envelope.Message) (reply, bool) {
	if prior, err := g.ledger.ByIdentity(ctx, msg.Identity.Key(), from.asPlacer()); err == nil {
		return g.replayed(msg.Version, prior), true // a cancellation sent again
	}
	orders, err := g.ledger.ByFocusKey(ctx, ack.FocusKeys(msg), from.asPlacer())
	if err != nil {
		return g.failRecording(err), true
	}
	if len(orders) == 0 {
		g.log.Info("cancellation matches no order of its sender", zap.String("identity", msg.Identity.Key()), zap.String("partner", from.id()))
		return g.errorReply(edgeError(http.StatusUnprocessableEntity, ErrNoSuchOrder, envelope.IssueNotFound, "Bundle.entry[0].resource.focus",
			"the cancellation matches no order of yours in the gateway's custody; it was not routed")), true
	}
	order := orders[0]
	if order.Status != ledger.StatusRequested || !g.deliversItself(order.Fillers) {
		return reply{}, false
	}
	why := fmt.Sprintf("cancelled by message %s before delivery", msg.Identity.Key())
	a, err := g.ledger.Apply(ctx, order.TaskID, ledger.Change{Kind: ledger.ChangeCancelled, Partner: from.id(), Detail: msg.Identity.Key()},
		ledger.From(ledger.StatusCancelled, why, ledger.StatusRequested))
	if err != nil || !a.Changed {
		return reply{}, false
	}
	g.log.Info("order cancelled before delivery", zap.String("taskId", order.TaskID), zap.String("by", msg.Identity.Key()))
	return g.recordCancellation(ctx, from, msg, order), true
}

// recordCancellation keeps the cancellation message, with its answer, so
// that a resend of it is answered the same.
func (g *Gateway) recordCancellation(ctx context.Context, from *partner, msg *envelope.Message, order *ledger.Message) reply {
	a := ledger.Answer{Status: http.StatusOK, ContentType: contentType(msg.Version),
		Body: information(fmt.Sprintf("Task/%s (message %s) was cancelled before it was delivered", order.TaskID, order.Identity))}
	taskID := g.newID()
	m := &ledger.Message{
		TaskID: taskID, Identity: msg.Identity.Key(), Placer: from.id(), BundleID: msg.BundleID, HeaderID: msg.Header.ID,
		FHIRVersion: msg.Version.String(), Event: msg.Header.Event.Key(), Body: msg.Raw,
		Status: ledger.StatusCompleted, BusinessStatus: "cancelled Task/" + order.TaskID, Answer: a,
	}
	if err := g.ledger.Accept(ctx, m); err != nil {
		g.log.Warn("recording a cancellation failed", zap.String("taskId", order.TaskID), zap.Error(err))
	}
	return g.storedReply(msg.Version, a, taskID)
}

// deliversItself reports whether every filler is one the gateway delivers
// to (adapter http), so that it can still hold a message back.
func (g *Gateway) deliversItself(fillers []string) bool {
	for _, id := range fillers {
		if !g.httpFillers[id] {
			return false
		}
	}
	return len(fillers) > 0
}
