package ack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"go.uber.org/zap"
)

// defaultSyncTimeout is how long a synchronous submission waits for the
// filler's response when its route sets no syncTimeout.
const defaultSyncTimeout = 10 * time.Second

// Submission is one message offered to the core, whichever transport
// brought it.
type Submission struct {
	Body []byte
	// Version is what the transport's content type asked for
	// (envelope.VersionAuto: detect).
	Version envelope.Version
	From    Party
	// Async answers at custody; otherwise Submit waits for the filler's
	// response up to the route's syncTimeout.
	Async bool
	// ResponseURL is where the sender asks answers to be pushed (HTTP's
	// ?response-url=); it must be allowed.
	ResponseURL string
	// ReplyTo, when set, is where answers go (an AMQP reply queue, see
	// ReplyURL); the transport chose it, so no callback allow-list applies.
	ReplyTo string
	// CorrelationID is the conversation the sender names (HTTP
	// X-Correlation-ID, AMQP correlation_id).
	CorrelationID string
}

// Kind says what became of a submission, for metrics and logs.
type Kind string

// What a submission can become.
const (
	KindAccepted     Kind = "accepted"
	KindDuplicate    Kind = "duplicate"
	KindResponse     Kind = "response"
	KindProgress     Kind = "progress"
	KindCancellation Kind = "cancellation"
)

// Outcome is what the core answers a submission it took: the answer for
// the sender, and the Task or Bundle the answer concerns.
type Outcome struct {
	Kind   Kind
	Answer ledger.Answer
	// TaskID or BundleID is what the sender may follow (Content-Location).
	TaskID, BundleID string
	// Duplicate: the message was taken before; this is its answer again.
	Duplicate bool
}

// Submit takes one message through the exchange rules: validation,
// response correlation, cancellation, routing, authorization, custody and
// duplicate replay, and (synchronously) the wait for the filler. Refusals
// are a *Rejection (or an *envelope.Error for an invalid message).
func (c *Core) Submit(ctx context.Context, s Submission) (Outcome, error) {
	msg, err := c.parser.Parse(s.Body, s.Version)
	if err != nil {
		c.log.Info("message rejected", zap.String("rule", ruleOf(err)), zap.String("partner", s.From.ID))
		return Outcome{}, err
	}
	if msg.IsResponse() {
		return c.takeResponse(ctx, s.From, msg)
	}
	var cancels string // the order a cancellation routed to its filler cancels
	if _, isCancel := c.cfg.Routes.CancelRoute(msg.Header.Event); isCancel {
		if !s.From.mayPlace(msg.Header.Event) {
			return Outcome{}, forbidden(s.From, msg.Header.Event)
		}
		o, err, decided, order := c.cancelBeforeDelivery(ctx, s.From, msg)
		if decided {
			return o, err
		}
		cancels = order.TaskID
	}
	route, err := c.cfg.Routes.Match(msg.Header.Event)
	if err != nil {
		return c.takeProgress(ctx, s, msg)
	}
	if !s.From.mayPlace(msg.Header.Event) {
		return Outcome{}, forbidden(s.From, msg.Header.Event)
	}
	callback := s.ReplyTo
	if callback == "" {
		if s.ResponseURL != "" && (!c.cfg.CallbackAllowed(s.ResponseURL) || !s.From.mayCallBack(s.ResponseURL)) {
			return Outcome{}, reject(ErrCallback, envelope.IssueType("forbidden"), "",
				"response-url %s is not under an allowed callback prefix", s.ResponseURL)
		}
		callback = c.callbackURL(msg, s.ResponseURL)
	}
	taskID := c.newID()
	var response chan []byte
	if !s.Async {
		// Wait before custody: a quick filler may answer before custody returns.
		response = c.waiters.add(taskID)
		defer c.waiters.remove(taskID, response)
	}
	a, err := c.custody(ctx, s.From, msg, route, callback, taskID, cancels)
	var dup *ledger.DuplicateError
	switch {
	case errors.As(err, &dup):
		c.log.Info("duplicate message; original answer replayed", zap.String("taskId", dup.Prior.TaskID),
			zap.String("identity", msg.Identity.Key()), zap.String("partner", s.From.ID))
		return replayed(dup.Prior), nil
	case err != nil:
		return Outcome{}, err
	}
	if s.Async {
		return Outcome{Kind: KindAccepted, Answer: a, TaskID: taskID}, nil
	}
	return c.waitForResponse(ctx, msg, route, a, taskID, response), nil
}

// replayed is the answer to a message sent again: the answer recorded for
// prior, marked as a duplicate's.
func replayed(prior *ledger.Message) Outcome {
	return Outcome{Kind: KindDuplicate, Answer: prior.Answer, TaskID: prior.TaskID, Duplicate: true}
}

// forbidden is the refusal of an event the sender may not send.
func forbidden(p Party, ev envelope.Event) *Rejection {
	return reject(ErrForbidden, envelope.IssueType("forbidden"), "", "partner %s may not send the event %s", p.ID, ev)
}

// custody takes msg into the ledger as taskID, with its answer (202 +
// OperationOutcome), its callback and its outbox entries, and wakes the
// relay; cancels names the order a cancellation cancels. It returns the answer; a duplicate returns the ledger's
// *ledger.DuplicateError, which holds the original.
func (c *Core) custody(ctx context.Context, from Party, msg *envelope.Message, route router.Route, callback, taskID, cancels string) (ledger.Answer, error) {
	if n := c.ledger.Backlog(); n >= c.cfg.MaxBacklog {
		r := reject(ErrBusy, envelope.IssueType("transient"), "", "the gateway holds %d messages the broker has not taken yet; retry later", n)
		r.Issue.Severity = envelope.SeverityFatal
		return ledger.Answer{}, r
	}
	a := ledger.Answer{Status: http.StatusAccepted, ContentType: msg.Version.MediaType(), Body: envelope.Information(fmt.Sprintf(
		"message %s is in the gateway's custody, on its way to %s; follow it at Task/%s",
		msg.Identity.Key(), joinFillers(route.Fillers), taskID))}
	m := &ledger.Message{
		TaskID: taskID, Identity: msg.Identity.Key(), Placer: from.ID, BundleID: msg.BundleID, HeaderID: msg.Header.ID,
		FHIRVersion: msg.Version.String(), Event: msg.Header.Event.Key(), Fillers: route.Fillers, Body: msg.Raw,
		ResponseURL: callback, Status: ledger.StatusRequested, Answer: a, FocusKeys: FocusKeys(msg), Cancels: cancels,
	}
	if route.AckDeadline > 0 {
		m.AckDue = c.now().Add(route.AckDeadline)
	}
	err := c.ledger.Accept(ctx, m)
	switch {
	case errors.Is(err, ledger.ErrDuplicate):
		return a, err
	case errors.Is(err, ledger.ErrIdentityTaken):
		return a, reject(ErrIdentityTaken, envelope.IssueType("duplicate"), identityExpression(msg),
			"the message identity %s is already in use by another sender's message; give the message a new identity", msg.Identity.Key())
	case errors.Is(err, ledger.ErrBundleIDReused):
		return a, reject(ErrBundleIDReused, envelope.IssueInvalid, "Bundle.id",
			"Bundle.id %s was already used by another message (MessageHeader.id differs): Bundle.id values are never reused", msg.BundleID)
	case err != nil:
		return a, unavailable(err, "the gateway could not take custody of the message; retry later")
	}
	ds := make([]router.Delivery, len(m.Fillers))
	for i, f := range m.Fillers {
		ds[i] = router.Delivery{Seq: m.OutboxSeqs[i], TaskID: taskID, Filler: f, Identity: m.Identity, Event: m.Event, FHIRVersion: m.FHIRVersion, Body: m.Body}
	}
	c.cfg.Relay.Offer(ds...)
	c.log.Info("message accepted", zap.String("taskId", taskID), zap.String("identity", m.Identity),
		zap.String("event", m.Event), zap.Strings("fillers", route.Fillers), zap.String("partner", from.ID))
	return a, nil
}

// identityExpression is the FHIRPath of the element that holds msg's identity.
func identityExpression(msg *envelope.Message) string {
	if msg.Version == envelope.R5 {
		return "Bundle.identifier"
	}
	return "Bundle.entry[0].resource.id"
}

// callbackURL is where the placer's answers are pushed: its response-url,
// else its source endpoint's $process-message when that is under an allowed
// callback prefix; empty means the placer polls.
func (c *Core) callbackURL(msg *envelope.Message, responseURL string) string {
	if responseURL != "" {
		return responseURL
	}
	if src := msg.Header.Source.URL; src != "" && c.cfg.CallbackAllowed(src) {
		return strings.TrimSuffix(src, "/") + "/$process-message"
	}
	return ""
}

// waitForResponse holds a synchronous exchange until the filler's response
// or the route's syncTimeout, and records the final answer for duplicates.
func (c *Core) waitForResponse(ctx context.Context, msg *envelope.Message, route router.Route, accepted ledger.Answer, taskID string, response <-chan []byte) Outcome {
	timeout := route.SyncTimeout
	if timeout <= 0 {
		timeout = defaultSyncTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case body := <-response:
		a := ledger.Answer{Status: http.StatusOK, ContentType: msg.Version.MediaType(), Body: body}
		// The response is the answer from now on: a duplicate gets it too.
		if err := c.ledger.SetAnswer(context.WithoutCancel(ctx), taskID, a); err != nil {
			c.log.Warn("could not record the synchronous answer", zap.String("taskId", taskID), zap.Error(err))
		}
		return Outcome{Kind: KindAccepted, Answer: a, TaskID: taskID}
	case <-timer.C:
	case <-ctx.Done():
	}
	return Outcome{Kind: KindAccepted, Answer: accepted, TaskID: taskID}
}

// ruleOf names the rule behind a rejection, for logs.
func ruleOf(err error) string {
	var inv *envelope.Error
	if errors.As(err, &inv) && len(inv.Issues) > 0 {
		return string(inv.Issues[0].Rule)
	}
	return ""
}

func joinFillers(fillers []string) string { return strings.Join(fillers, ", ") }

func itoa(n int) string { return strconv.Itoa(n) }
