package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// reply is the gateway's answer to an inbound message, whichever transport
// brought it: HTTP writes it as the response, AMQP publishes it to reply_to
// with the status in a header.
type reply struct {
	Status      int
	ContentType string
	Body        []byte
	// Location is the Task or Bundle the answer concerns (Content-Location).
	Location string
	// RetryAfter asks the sender to wait before sending again (with 503).
	RetryAfter time.Duration
	// Err is set for rejections: its cause, for logs and errors.Is.
	Err *Error
	// Duplicate marks the answer to a message the gateway had already
	// taken: the original answer, replayed (HeaderDuplicate).
	Duplicate bool
}

// HeaderDuplicate is the HTTP header that marks an answer replayed for a
// duplicate message; AMQP answers carry router.HeaderDuplicate.
const HeaderDuplicate = "Fhirgw-Duplicate"

// duplicate is r marked as the answer replayed for a duplicate.
func (r reply) duplicate() reply {
	r.Duplicate = true
	return r
}

// errorReply is the answer for an edge error.
func (g *Gateway) errorReply(e *Error) reply {
	if e.Status >= 500 {
		g.log.Error("request failed", zap.Int("status", e.Status), zap.Error(e.Err))
	}
	if e.Status == http.StatusServiceUnavailable && e.RetryAfter == 0 {
		e.RetryAfter = g.cfg.Outbox.RetryAfter.Std()
	}
	r := reply{Status: e.Status, ContentType: contentType(g.version), Body: e.Outcome().JSON(), RetryAfter: e.RetryAfter, Err: e,
		Duplicate: e.Duplicate}
	if e.BundleID != "" {
		r.Location = g.base + "/Bundle/" + e.BundleID
	}
	return r
}

// write sends r as the HTTP response.
func (r reply) write(c *gin.Context) {
	if r.Location != "" {
		c.Header("Content-Location", r.Location)
	}
	if r.Duplicate {
		c.Header(HeaderDuplicate, "true")
	}
	if r.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(r.RetryAfter)))
	}
	c.Data(r.Status, r.ContentType, r.Body)
	c.Abort()
}

// retryAfterSeconds rounds d up to whole seconds, as Retry-After wants.
func retryAfterSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
