package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// defaultSyncTimeout is how long a synchronous POST waits for the filler's
// response when its route sets no syncTimeout.
const defaultSyncTimeout = 10 * time.Second

// processMessage is POST [base]/$process-message: the HTTP edge of process.
func (g *Gateway) processMessage(c *gin.Context) {
	v, e := g.requestVersion(c.Request)
	if e == nil {
		var body []byte
		if body, e = g.readBody(c); e == nil {
			g.process(c.Request.Context(), inbound{
				Body: body, Version: v, Partner: caller(c), Async: c.Query("async") == "true",
				ResponseURL: c.Query("response-url"), CorrelationID: c.GetHeader("X-Correlation-ID"),
			}).write(c)
			return
		}
	}
	g.metrics.observeIntake("error", 0)
	g.fail(c, e)
}

// readBody reads the body within http.maxBodyBytes.
func (g *Gateway) readBody(c *gin.Context) ([]byte, *Error) {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, int64(g.cfg.HTTP.MaxBodyBytes))
	buf := bytes.NewBuffer(make([]byte, 0, readSize(c.Request.ContentLength, g.cfg.HTTP.MaxBodyBytes)))
	_, err := buf.ReadFrom(r)
	body := buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, tooLarge(g.cfg.HTTP.MaxBodyBytes)
	case err != nil:
		return nil, edgeError(http.StatusBadRequest, err, envelope.IssueStructure, "", "the body could not be read: %v", err)
	}
	return body, nil
}

// readSize is the buffer to read a body into: its announced length (plus
// room for ReadFrom to see EOF without growing), within the body limit.
func readSize(contentLength int64, limit int) int {
	if contentLength <= 0 || contentLength > int64(limit) {
		return 4096
	}
	return int(contentLength) + bytes.MinRead
}

// custody takes msg into the ledger as taskID, with its answer (202 +
// OperationOutcome), its callback and its outbox entries, and wakes the
// relay. It returns the answer; a duplicate returns the ledger's
// *ledger.DuplicateError, which holds the original.
func (g *Gateway) custody(ctx context.Context, msg *envelope.Message, route router.Route, callback, taskID string) (ledger.Answer, error) {
	if n := g.ledger.Backlog(); n >= g.cfg.Outbox.MaxBacklog {
		return ledger.Answer{}, g.unavailable(nil, "the gateway holds %d messages the broker has not taken yet; retry later", n)
	}
	a := ledger.Answer{Status: http.StatusAccepted, ContentType: contentType(msg.Version), Body: information(fmt.Sprintf(
		"message %s is in the gateway's custody, on its way to %s; follow it at Task/%s",
		msg.Identity.Key(), strings.Join(route.Fillers, ", "), taskID))}
	m := &ledger.Message{
		TaskID: taskID, Identity: msg.Identity.Key(), BundleID: msg.BundleID, HeaderID: msg.Header.ID,
		FHIRVersion: msg.Version.String(), Event: msg.Header.Event.Key(), Fillers: route.Fillers, Body: msg.Raw,
		ResponseURL: callback, Status: "requested", Answer: a, FocusKeys: ack.FocusKeys(msg),
	}
	if route.AckDeadline > 0 {
		m.AckDue = g.now().Add(route.AckDeadline)
	}
	err := g.ledger.Accept(ctx, m)
	switch {
	case errors.Is(err, ledger.ErrDuplicate):
		return a, err
	case errors.Is(err, ledger.ErrBundleIDReused):
		return a, edgeError(http.StatusBadRequest, ErrBundleIDReused, envelope.IssueInvalid, "Bundle.id",
			"Bundle.id %s was already used by another message (MessageHeader.id differs): Bundle.id values are never reused", msg.BundleID)
	case err != nil:
		return a, g.unavailable(err, "the gateway could not take custody of the message; retry later")
	}
	ds := make([]router.Delivery, len(m.Fillers))
	for i, f := range m.Fillers {
		ds[i] = router.Delivery{Seq: m.OutboxSeqs[i], TaskID: taskID, Filler: f, Identity: m.Identity, Event: m.Event, FHIRVersion: m.FHIRVersion, Body: m.Body}
	}
	g.relay.Offer(ds...)
	g.log.Info("message accepted", zap.String("taskId", taskID), zap.String("identity", m.Identity),
		zap.String("event", m.Event), zap.Strings("fillers", route.Fillers))
	return a, nil
}

// unavailable is the 503 for a message the gateway cannot take or record
// now, retried after the configured wait. Its cause is ErrCustody, or the
// underlying failure when there is one.
func (g *Gateway) unavailable(cause error, format string, args ...any) *Error {
	e := edgeError(http.StatusServiceUnavailable, ErrCustody, envelope.IssueType("transient"), "", format, args...)
	e.RetryAfter = g.cfg.Outbox.RetryAfter.Std()
	if cause != nil {
		e.Err = cause
	}
	return e
}

// callbackURL is where the placer's answers are pushed: its response-url,
// else its source endpoint's $process-message when that is under an allowed
// callback prefix; empty means the placer polls.
func (g *Gateway) callbackURL(msg *envelope.Message, responseURL string) string {
	if responseURL != "" {
		return responseURL
	}
	if src := msg.Header.Source.URL; src != "" && g.callbackAllowed(src) {
		return strings.TrimSuffix(src, "/") + "/$process-message"
	}
	return ""
}

// callbackAllowed reports whether target, normalised as the pusher dials
// it (ack.CallbackURL), is under an allowed callback prefix.
func (g *Gateway) callbackAllowed(target string) bool {
	u, err := ack.CallbackURL(target)
	return err == nil && g.cfg.CallbackAllowed(u)
}

// underPrefix reports whether target is under the URL prefix: the same
// scheme and host (and port, when the prefix names one), no user info, and
// a path that starts with the prefix's path at a segment boundary. Plain
// string prefixes would let http://127.0.0.1.evil.example pass for
// http://127.0.0.1.
func underPrefix(target, prefix string) bool {
	t, err := url.Parse(target)
	if err != nil || t.User != nil || t.Host == "" {
		return false
	}
	p, err := url.Parse(prefix)
	if err != nil || p.Host == "" {
		return false
	}
	if !strings.EqualFold(t.Scheme, p.Scheme) || !strings.EqualFold(t.Hostname(), p.Hostname()) {
		return false
	}
	if p.Port() != "" && portOf(t) != p.Port() {
		return false
	}
	if p.Path == "" || p.Path == "/" {
		return true
	}
	return t.Path == strings.TrimSuffix(p.Path, "/") || strings.HasPrefix(t.Path, strings.TrimSuffix(p.Path, "/")+"/")
}

// portOf is u's port, its scheme's default when it names none.
func portOf(u *url.URL) string {
	switch {
	case u.Port() != "":
		return u.Port()
	case strings.EqualFold(u.Scheme, "https"):
		return "443"
	case strings.EqualFold(u.Scheme, "http"):
		return "80"
	}
	return ""
}

// ruleOf names the rule behind a rejection, for logs.
func ruleOf(err error) string {
	var inv *envelope.Error
	if errors.As(err, &inv) && len(inv.Issues) > 0 {
		return string(inv.Issues[0].Rule)
	}
	return ""
}
