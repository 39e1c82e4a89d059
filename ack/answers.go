package ack

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// takeResponse records a response message against the request it quotes,
// among the requests routed to a filler the sender answers for; one that
// quotes nothing there is kept and refused with ErrUnmatched.
func (c *Core) takeResponse(ctx context.Context, from Party, msg *envelope.Message) (Outcome, error) {
	req, err := c.findRequest(ctx, msg.Header.Response.Identifier, from.asFiller())
	if errors.Is(err, ledger.ErrNotFound) {
		return c.takeUnmatched(ctx, from, msg)
	}
	if err != nil {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later")
	}
	return c.takeAnswer(ctx, from, req, msg, KindResponse)
}

// takeProgress handles a message no route takes: a filler's progress
// report about a request routed to the sender's fillers, pointing at the
// request's focus or naming it by the conversation id it echoes (the rules
// in that order). A routed message is always a new request.
func (c *Core) takeProgress(ctx context.Context, s Submission, msg *envelope.Message) (Outcome, error) {
	req, ambiguous, err := c.correlateByFocus(ctx, s.From, msg)
	if err != nil {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later")
	}
	if req == nil && s.CorrelationID != "" {
		req, _ = c.ledger.ByIdentity(ctx, s.CorrelationID, s.From.asFiller())
	}
	if req != nil {
		return c.takeAnswer(ctx, s.From, req, msg, KindProgress)
	}
	if ambiguous {
		c.log.Info("progress matches requests of several placers", zap.String("identity", msg.Identity.Key()), zap.String("partner", s.From.ID))
		return Outcome{}, reject(ErrAmbiguous, envelope.IssueType("multiple-matches"), "",
			"the message points at a resource that requests of several placers share; name the request by response.identifier or the conversation id")
	}
	c.log.Info("no route for the event", zap.String("event", msg.Header.Event.Key()), zap.String("identity", msg.Identity.Key()))
	return Outcome{}, reject(ErrNoRoute, envelope.IssueNotSupported, "Bundle.entry[0].resource.event", "no route accepts the event %s", msg.Header.Event)
}

// takeAnswer records a filler's response or progress message in req's
// exchange, and says so.
func (c *Core) takeAnswer(ctx context.Context, from Party, req *ledger.Message, msg *envelope.Message, kind Kind) (Outcome, error) {
	bundleID, err := c.record(ctx, from.ID, answeringFiller(from, req), req, msg)
	if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later")
	}
	what := "response"
	if kind == KindProgress {
		what = "progress message"
	}
	// Sent again, it gets the same answer, marked as a duplicate's.
	return Outcome{Kind: kind, BundleID: bundleID, Duplicate: err != nil, Answer: ledger.Answer{Status: http.StatusOK,
		ContentType: msg.Version.MediaType(), Body: envelope.Information(what + " recorded for Task/" + req.TaskID)}}, nil
}

// takeUnmatched keeps a response that quotes no message in the sender's
// scope (it is readable at Bundle/{id} by its sender) and refuses it.
func (c *Core) takeUnmatched(ctx context.Context, from Party, msg *envelope.Message) (Outcome, error) {
	quoted := msg.Header.Response.Identifier
	c.log.Info("response matches no message in custody", zap.String("identity", msg.Identity.Key()), zap.String("quotes", quoted.String()),
		zap.String("partner", from.ID))
	r := &ledger.Response{BundleID: c.newID(), Identity: msg.Identity.Key(), Sender: from.ID, Code: string(msg.Header.Response.Code), Body: msg.Raw}
	err := c.ledger.AddUnmatched(ctx, r)
	if err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		return Outcome{}, unavailable(err, "the message could not be recorded; retry later")
	}
	rej := reject(ErrUnmatched, envelope.IssueNotFound, "Bundle.entry[0].resource.response.identifier",
		"the response quotes %s, which matches no message in the gateway's custody; it was recorded as Bundle/%s", quoted, r.BundleID)
	rej.BundleID, rej.Duplicate = r.BundleID, err != nil
	return Outcome{}, rej
}

// record stores a response or progress message from sender in req's
// exchange, moves its Task as the message reports (forward only), queues
// it for the placer and hands a response to a synchronous waiter. A message
// recorded before returns ledger.ErrDuplicate, with the Bundle recorded
// then.
func (c *Core) record(ctx context.Context, sender, filler string, req *ledger.Message, msg *envelope.Message) (bundleID string, err error) {
	code := "progress"
	if msg.IsResponse() {
		code = string(msg.Header.Response.Code)
	}
	proposed, reported := Progress(msg)
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
	r := &ledger.Response{BundleID: c.newID(), Identity: msg.Identity.Key(), TaskID: req.TaskID, Sender: sender, Filler: filler, Code: code, Body: msg.Raw}
	if err := c.ledger.AddResponse(ctx, r, move); err != nil {
		return r.BundleID, err
	}
	c.log.Info("answer recorded", zap.String("taskId", req.TaskID), zap.String("code", code), zap.String("status", string(status)),
		zap.String("bundleId", r.BundleID), zap.String("partner", sender))
	if msg.IsResponse() {
		c.waiters.deliver(req.TaskID, msg.Raw)
		if req.Cancels != "" {
			c.decideCancellation(ctx, sender, filler, req, msg.Header.Response.Code)
		}
	}
	if c.cfg.Pusher != nil && req.ResponseURL != "" {
		c.cfg.Pusher.Notify()
	}
	return r.BundleID, nil
}

// recordFor records a message the gateway has in hand for a known task,
// from filler.
func (c *Core) recordFor(ctx context.Context, taskID, filler string, msg *envelope.Message) error {
	req, err := c.ledger.Task(ctx, taskID, ledger.Anyone)
	if err != nil {
		return err
	}
	_, err = c.record(ctx, "", filler, req, msg)
	return err
}

// answeringFiller is the filler of req that from answers for: the first of
// req's fillers it may answer for. The anonymous party (authentication
// off) cannot be told apart by filler: its answers move every filler's
// Task still open ("").
func answeringFiller(from Party, req *ledger.Message) string {
	if from.Anonymous {
		return ""
	}
	for _, f := range req.Fillers {
		if slices.Contains(from.Fillers, f) {
			return f
		}
	}
	return ""
}

// correlateByFocus finds the exchange a message points at: a request,
// routed to the sender's fillers, whose focus the message's basedOn or Task
// focus names. Requests of several placers sharing the pointer are
// ambiguous: it does not guess.
func (c *Core) correlateByFocus(ctx context.Context, from Party, msg *envelope.Message) (req *ledger.Message, ambiguous bool, err error) {
	keys := ProgressKeys(msg)
	if len(keys) == 0 {
		return nil, false, nil
	}
	found, err := c.ledger.ByFocusKey(ctx, keys, from.asFiller())
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
func (c *Core) findRequest(ctx context.Context, quoted envelope.Identifier, scope ledger.Scope) (*ledger.Message, error) {
	keys := []string{quoted.Value}
	if quoted.System != "" {
		keys = []string{quoted.System + "|" + quoted.Value, quoted.Value}
	}
	for _, k := range keys {
		m, err := c.ledger.ByIdentity(ctx, k, scope)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
	}
	return nil, ledger.ErrNotFound
}

// answerPlacer records a response the gateway itself gives the placer of m
// (about filler's delivery; "" about all), as it records a filler's, so that
// it shows in the Task and reaches the placer.
func (c *Core) answerPlacer(ctx context.Context, m *ledger.Message, filler string, code envelope.ResponseCode, why string) error {
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	req, err := c.parser.Parse(m.Body, v)
	if err != nil {
		return errors.Join(errors.New("ack: the request of Task/"+m.TaskID+" no longer parses"), err)
	}
	issue := envelope.IssueType("transient")
	if code == envelope.ResponseFatalError {
		issue = envelope.IssueType("processing")
	}
	oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: issue, Diagnostics: why})
	body, err := c.responder.Response(req, code, &oo)
	if err != nil {
		return err
	}
	resp, err := c.parser.Parse(body, v)
	if err != nil {
		return errors.Join(errors.New("ack: the gateway's own response does not parse"), err)
	}
	_, err = c.record(ctx, "", filler, m, resp)
	return err
}
