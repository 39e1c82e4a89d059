package gateway

import (
	"strconv"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

// fail answers with an edge error: its status, Retry-After when set, and its
// OperationOutcome.
func (g *Gateway) fail(c *gin.Context, e *Error) {
	if e.Status >= 500 {
		g.log.Error("request failed", zap.Int("status", e.Status), zap.String("path", c.Request.URL.Path), zap.Error(e.Err))
	}
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((e.RetryAfter+999_999_999)/1_000_000_000)))
	}
	g.writeFHIR(c, e.Status, g.version, e.Outcome().JSON())
}

// writeFHIR answers with FHIR JSON bytes of version v.
func (g *Gateway) writeFHIR(c *gin.Context, status int, v envelope.Version, body []byte) {
	c.Data(status, contentType(v), body)
	c.Abort()
}

// information is an OperationOutcome with one information issue.
func information(format string) []byte {
	return envelope.NewOutcome(envelope.Issue{
		Severity: envelope.SeverityInformation, Code: envelope.IssueInformational, Diagnostics: format,
	}).JSON()
}
