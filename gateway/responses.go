package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// takeResponse answers a response message POSTed by a filler: it records
// it against the request it quotes (see recordResponse).
func (g *Gateway) takeResponse(c *gin.Context, msg *envelope.Message) {
	taskID, bundleID, err := g.recordResponse(c.Request.Context(), msg)
	switch {
	case errors.Is(err, ErrUnmatched):
		quoted := msg.Header.Response.Identifier
		g.fail(c, edgeError(http.StatusUnprocessableEntity, ErrUnmatched, envelope.IssueNotFound,
			"Bundle.entry[0].resource.response.identifier",
			"the response quotes %s, which matches no message in the gateway's custody", quoted))
	case errors.Is(err, ledger.ErrDuplicate):
		g.writeFHIR(c, http.StatusOK, msg.Version, information("this response was already recorded for Task/"+taskID))
	case err != nil:
		e := edgeError(http.StatusServiceUnavailable, ErrCustody, envelope.IssueType("transient"), "", "the response could not be recorded; retry later")
		e.Err, e.RetryAfter = err, g.cfg.Outbox.RetryAfter.Std()
		g.fail(c, e)
	default:
		c.Header("Content-Location", g.base+"/Bundle/"+bundleID)
		g.writeFHIR(c, http.StatusOK, msg.Version, information("response recorded for Task/"+taskID))
	}
}

// recordResponse records a response message against the request it quotes,
// moves the request's Task, and hands it to a synchronous waiter. It returns
// ErrUnmatched when the response quotes no message in custody, and
// ledger.ErrDuplicate (with the task) when it was recorded before.
func (g *Gateway) recordResponse(ctx context.Context, msg *envelope.Message) (taskID, bundleID string, err error) {
	quoted := msg.Header.Response.Identifier
	req, err := g.findRequest(ctx, quoted)
	if errors.Is(err, ledger.ErrNotFound) {
		g.log.Info("response matches no message in custody", zap.String("identity", msg.Identity.Key()), zap.String("quotes", quoted.String()))
		return "", "", ErrUnmatched
	}
	if err != nil {
		return "", "", err
	}
	code := msg.Header.Response.Code
	r := &ledger.Response{BundleID: g.newID(), Identity: msg.Identity.Key(), TaskID: req.TaskID, Code: string(code), Body: msg.Raw}
	if err := g.ledger.AddResponse(ctx, r, statusAfter(req.Status, code)); err != nil {
		return req.TaskID, "", err
	}
	g.log.Info("response recorded", zap.String("taskId", req.TaskID), zap.String("code", string(code)), zap.String("bundleId", r.BundleID))
	g.waiters.deliver(req.TaskID, msg.Raw)
	if g.pusher != nil && req.ResponseURL != "" {
		g.pusher.Notify()
	}
	return req.TaskID, r.BundleID, nil
}

// findRequest finds the message a response.identifier quotes: by
// system|value, then by value alone (R4 ids and identifiers without system).
func (g *Gateway) findRequest(ctx context.Context, quoted envelope.Identifier) (*ledger.Message, error) {
	keys := []string{quoted.Value}
	if quoted.System != "" {
		keys = []string{quoted.System + "|" + quoted.Value, quoted.Value}
	}
	for _, k := range keys {
		m, err := g.ledger.ByIdentity(ctx, k)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
	}
	return nil, ledger.ErrNotFound
}

// statusAfter is the Task status once a response with code arrives: ok
// accepts a request not yet accepted, fatal-error rejects it; otherwise the
// status stays (empty: unchanged).
func statusAfter(current string, code envelope.ResponseCode) string {
	switch code {
	case envelope.ResponseOK:
		if current == "requested" || current == "received" {
			return "accepted"
		}
	case envelope.ResponseFatalError:
		return "rejected"
	}
	return ""
}
