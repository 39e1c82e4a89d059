package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// takeResponse answers a response message sent by a filler: it records
// it against the request it quotes (see record), after checking that the
// sender may answer for that request's fillers.
func (g *Gateway) takeResponse(ctx context.Context, from *partner, msg *envelope.Message) reply {
	req, err := g.findRequest(ctx, msg.Header.Response.Identifier, from.asFiller())
	if errors.Is(err, ledger.ErrNotFound) {
		return g.takeUnmatched(ctx, from, msg)
	}
	if err != nil {
		return g.failRecording(err)
	}
	return g.takeAnswer(ctx, from, req, msg, "response")
}

// takeAnswer records a filler's response or progress message (kind) in
// req's exchange (found in the sender's filler scope), and says so.
func (g *Gateway) takeAnswer(ctx context.Context, from *partner, req *ledger.Message, msg *envelope.Message, kind string) reply {
	bundleID, err := g.record(ctx, from.id(), req, msg)
	if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return g.failRecording(err)
	}
	// Sent again, it gets the same answer, marked as a duplicate's.
	r := infoReply(msg.Version, g.base+"/Bundle/"+bundleID, kind+" recorded for Task/"+req.TaskID)
	r.Duplicate = err != nil
	return r
}

// failRecording answers 503 when the ledger could not record an answer.
func (g *Gateway) failRecording(err error) reply {
	return g.errorReply(g.unavailable(err, "the message could not be recorded; retry later"))
}

// takeUnmatched keeps a response that quotes no message in the sender's
// scope (it is readable at Bundle/{id} by its sender) and answers 422.
func (g *Gateway) takeUnmatched(ctx context.Context, from *partner, msg *envelope.Message) reply {
	quoted := msg.Header.Response.Identifier
	g.log.Info("response matches no message in custody", zap.String("identity", msg.Identity.Key()), zap.String("quotes", quoted.String()),
		zap.String("partner", from.id()))
	r := &ledger.Response{BundleID: g.newID(), Identity: msg.Identity.Key(), Sender: from.id(), Code: string(msg.Header.Response.Code), Body: msg.Raw}
	err := g.ledger.AddUnmatched(ctx, r)
	if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return g.failRecording(err)
	}
	rep := g.errorReply(edgeError(http.StatusUnprocessableEntity, ErrUnmatched, envelope.IssueNotFound,
		"Bundle.entry[0].resource.response.identifier",
		"the response quotes %s, which matches no message in the gateway's custody; it was recorded as Bundle/%s", quoted, r.BundleID))
	rep.Location = g.base + "/Bundle/" + r.BundleID
	rep.Duplicate = err != nil
	return rep
}

// recordResponse records a response message from sender (a filler the
// gateway delivers to, or the gateway itself) against the request it quotes
// within scope (see record). It returns ErrUnmatched when the response
// quotes no message there.
func (g *Gateway) recordResponse(ctx context.Context, sender string, scope ledger.Scope, msg *envelope.Message) error {
	quoted := msg.Header.Response.Identifier
	req, err := g.findRequest(ctx, quoted, scope)
	if errors.Is(err, ledger.ErrNotFound) {
		g.log.Info("response matches no message in custody", zap.String("identity", msg.Identity.Key()), zap.String("quotes", quoted.String()))
		return ErrUnmatched
	}
	if err != nil {
		return err
	}
	_, err = g.record(ctx, sender, req, msg)
	return err
}

// record stores a response or progress message in req's exchange, moves
// its Task as the message reports (forward only), queues it for the placer
// and hands a response to a synchronous waiter. A message recorded before
// returns ledger.ErrDuplicate.
func (g *Gateway) record(ctx context.Context, sender string, req *ledger.Message, msg *envelope.Message) (bundleID string, err error) {
	code := "progress"
	if msg.IsResponse() {
		code = string(msg.Header.Response.Code)
	}
	proposed, reported := ack.Progress(msg)
	var status ledger.Status // what the task moved to, for the log
	move := func(current ledger.Status) (ledger.Status, string) {
		next, moved := ledger.Advance(current, proposed)
		business := reported
		if !moved {
			next = ""
			if current.Terminal() {
				business = "" // a finished exchange keeps the reason it finished
			}
		}
		status = next
		return next, business
	}
	r := &ledger.Response{BundleID: g.newID(), Identity: msg.Identity.Key(), TaskID: req.TaskID, Sender: sender, Code: code, Body: msg.Raw}
	if err := g.ledger.AddResponse(ctx, r, move); err != nil {
		return r.BundleID, err // on ErrDuplicate, the Bundle recorded before
	}
	g.log.Info("answer recorded", zap.String("taskId", req.TaskID), zap.String("code", code), zap.String("status", string(status)), zap.String("bundleId", r.BundleID), zap.String("partner", sender))
	if msg.IsResponse() {
		g.waiters.deliver(req.TaskID, msg.Raw)
	}
	if g.pusher != nil && req.ResponseURL != "" {
		g.pusher.Notify()
	}
	return r.BundleID, nil
}

// correlateByID finds the exchange a filler names by the X-Correlation-ID
// (or AMQP correlation_id) it echoes (the message identity the http adapter
// sent it), among the exchanges routed to the sender's fillers.
func (g *Gateway) correlateByID(ctx context.Context, from *partner, correlationID string) (*ledger.Message, bool) {
	if correlationID == "" {
		return nil, false
	}
	req, err := g.ledger.ByIdentity(ctx, correlationID, from.asFiller())
	return req, err == nil
}

// correlateByFocus finds the exchange a message points at: a request,
// routed to the sender's fillers, whose focus the message's basedOn or Task
// focus names. It is asked only about messages no route takes, so a routed
// message is never mistaken for progress. Requests of several placers
// sharing the pointer are ambiguous: it does not guess.
func (g *Gateway) correlateByFocus(ctx context.Context, from *partner, msg *envelope.Message) (req *ledger.Message, ambiguous bool, err error) {
	keys := ack.ProgressKeys(msg)
	if len(keys) == 0 {
		return nil, false, nil
	}
	found, err := g.ledger.ByFocusKey(ctx, keys, from.asFiller())
	switch {
	case err != nil:
		return nil, false, err
	case len(found) == 1:
		return found[0], false, nil
	}
	return nil, len(found) > 1, nil
}

// findRequest finds the newest message within scope that a
// response.identifier quotes: by system|value, then by value alone (R4 ids
// and identifiers without system).
func (g *Gateway) findRequest(ctx context.Context, quoted envelope.Identifier, scope ledger.Scope) (*ledger.Message, error) {
	keys := []string{quoted.Value}
	if quoted.System != "" {
		keys = []string{quoted.System + "|" + quoted.Value, quoted.Value}
	}
	for _, k := range keys {
		m, err := g.ledger.ByIdentity(ctx, k, scope)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
	}
	return nil, ledger.ErrNotFound
}
