package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"go.uber.org/zap"
)

// inbound is a message offered to the gateway. HTTP POSTs and AMQP
// publishes both become one and go through process, so that both
// transports meet one contract.
type inbound struct {
	Body []byte
	// Version is what the content type asked for (VersionAuto: detect).
	Version envelope.Version
	// Partner is the authenticated sender (nil: authentication is off).
	Partner *partner
	// Async answers at custody; otherwise process waits for the filler's
	// response up to the route's syncTimeout.
	Async bool
	// ResponseURL is HTTP's ?response-url=.
	ResponseURL string
	// Callback, when set, is where answers go (an AMQP reply queue, see
	// ack.ReplyURL); it was not chosen by a URL the sender typed, so no
	// callback allow-list applies.
	Callback string
	// CorrelationID is the conversation the sender names: HTTP
	// X-Correlation-ID or AMQP correlation_id.
	CorrelationID string
}

// process takes one inbound message through the pipeline: validation,
// response correlation, cancellation, routing, authorization, custody and
// duplicate replay, and (synchronous mode) the wait for the filler.
func (g *Gateway) process(ctx context.Context, in inbound) reply {
	start := g.now()
	r, outcome := g.pipeline(ctx, in)
	g.metrics.observeIntake(outcome, g.now().Sub(start))
	return r
}

func (g *Gateway) pipeline(ctx context.Context, in inbound) (reply, string) {
	msg, err := g.parser.Parse(in.Body, in.Version)
	if err != nil {
		g.log.Info("message rejected", zap.String("rule", ruleOf(err)))
		return g.errorReply(asEdgeError(err)), "invalid"
	}
	if msg.IsResponse() {
		return g.takeResponse(ctx, in.Partner, msg), "response"
	}
	if _, isCancel := g.routes.CancelRoute(msg.Header.Event); isCancel {
		if e := in.Partner.checkPlace(msg.Header.Event); e != nil {
			return g.errorReply(e), "forbidden"
		}
		if r, ok := g.cancelBeforeDelivery(ctx, in.Partner, msg); ok {
			return r, "cancellation"
		}
	}
	route, err := g.routes.Match(msg.Header.Event)
	if err != nil {
		// A message no route takes may be a filler's progress report, about
		// a request routed to the sender's fillers: pointing at the
		// request's focus, or naming it by the conversation id it echoes.
		// A routed message is always a new request.
		req, ambiguous, ferr := g.correlateByFocus(ctx, in.Partner, msg)
		if ferr != nil {
			return g.failRecording(ferr), "error"
		}
		if req == nil {
			req, _ = g.correlateByID(ctx, in.Partner, in.CorrelationID)
		}
		if req != nil {
			return g.takeAnswer(ctx, in.Partner, req, msg, "progress message"), "progress"
		}
		if ambiguous {
			g.log.Info("progress matches requests of several placers", zap.String("identity", msg.Identity.Key()), zap.String("partner", in.Partner.id()))
			return g.errorReply(edgeError(http.StatusUnprocessableEntity, ErrAmbiguous, envelope.IssueType("multiple-matches"), "",
				"the message points at a resource that requests of several placers share; name the request by response.identifier or the conversation id")), "unroutable"
		}
		g.log.Info("no route for the event", zap.String("event", msg.Header.Event.Key()), zap.String("identity", msg.Identity.Key()))
		return g.errorReply(edgeError(http.StatusUnprocessableEntity, ErrNoRoute, envelope.IssueNotSupported, "Bundle.entry[0].resource.event",
			"no route accepts the event %s", msg.Header.Event)), "unroutable"
	}
	if e := in.Partner.checkPlace(msg.Header.Event); e != nil {
		return g.errorReply(e), "forbidden"
	}
	callback := in.Callback
	if callback == "" {
		if in.ResponseURL != "" && (!g.callbackAllowed(in.ResponseURL) || !in.Partner.mayCallBack(in.ResponseURL)) {
			return g.errorReply(edgeError(http.StatusForbidden, ErrCallback, envelope.IssueType("forbidden"), "",
				"response-url %s is not under an allowed callback prefix", in.ResponseURL)), "forbidden"
		}
		callback = g.callbackURL(msg, in.ResponseURL)
	}
	taskID := g.newID()
	var response chan []byte
	if !in.Async {
		// Wait before custody: a quick filler may answer before custody returns.
		response = g.waiters.add(taskID)
		defer g.waiters.remove(taskID, response)
	}
	a, err := g.custody(ctx, in.Partner, msg, route, callback, taskID)
	var dup *ledger.DuplicateError
	switch {
	case errors.As(err, &dup):
		g.log.Info("duplicate message; original answer replayed", zap.String("taskId", dup.Prior.TaskID), zap.String("identity", msg.Identity.Key()))
		return g.replayed(msg.Version, dup.Prior), "duplicate"
	case err != nil:
		return g.errorReply(asEdgeError(err)), "error"
	}
	if in.Async {
		return g.storedReply(msg.Version, a, taskID), "accepted"
	}
	return g.waitForResponse(ctx, msg, route, a, taskID, response), "accepted"
}

// waitForResponse holds a synchronous exchange until the filler's response
// or the route's syncTimeout, and records the final answer for duplicates.
func (g *Gateway) waitForResponse(ctx context.Context, msg *envelope.Message, route router.Route, accepted ledger.Answer, taskID string, response <-chan []byte) reply {
	timeout := route.SyncTimeout
	if timeout <= 0 {
		timeout = defaultSyncTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case body := <-response:
		a := ledger.Answer{Status: http.StatusOK, ContentType: contentType(msg.Version), Body: body}
		// The response is the answer from now on: a duplicate gets it too.
		if err := g.ledger.SetAnswer(context.WithoutCancel(ctx), taskID, a); err != nil {
			g.log.Warn("could not record the synchronous answer", zap.String("taskId", taskID), zap.Error(err))
		}
		return g.storedReply(msg.Version, a, taskID)
	case <-timer.C:
	case <-ctx.Done():
	}
	return g.storedReply(msg.Version, accepted, taskID)
}
