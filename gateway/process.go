package gateway

import (
	"context"
	"errors"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/envelope"
)

// submit hands one message to the core, whichever transport brought it,
// and turns what the core decided into the answer; HTTP POSTs and AMQP
// publishes meet one contract.
func (g *Gateway) submit(ctx context.Context, s ack.Submission) reply {
	start := g.now()
	o, err := g.core.Submit(ctx, s)
	if err != nil {
		g.metrics.observeIntake(outcomeOf(err), g.now().Sub(start))
		return g.errorReply(asEdgeError(err))
	}
	g.metrics.observeIntake(string(o.Kind), g.now().Sub(start))
	r := reply{Status: o.Answer.Status, ContentType: o.Answer.ContentType, Body: o.Answer.Body, Duplicate: o.Duplicate}
	if r.ContentType == "" {
		r.ContentType = contentType(g.version)
	}
	switch {
	case o.TaskID != "":
		r.Location = g.base + "/Task/" + o.TaskID
	case o.BundleID != "":
		r.Location = g.base + "/Bundle/" + o.BundleID
	}
	return r
}

// outcomeOf names a refusal for the intake metric.
func outcomeOf(err error) string {
	var inv *envelope.Error
	switch {
	case errors.As(err, &inv):
		return "invalid"
	case errors.Is(err, ack.ErrNoRoute), errors.Is(err, ack.ErrAmbiguous), errors.Is(err, ack.ErrNoSuchOrder), errors.Is(err, ack.ErrUnmatched):
		return "unroutable"
	case errors.Is(err, ack.ErrIdentityTaken):
		return "conflict"
	case errors.Is(err, ack.ErrForbidden), errors.Is(err, ack.ErrCallback):
		return "forbidden"
	}
	return "error"
}

// party is the core's view of the authenticated partner p (nil: the
// anonymous party of auth.disabled).
func party(p *partner) ack.Party {
	if p == nil {
		return ack.Party{Anonymous: true}
	}
	return ack.Party{ID: p.ID, Events: p.Events, Fillers: p.Fillers, Callbacks: p.Callbacks}
}
