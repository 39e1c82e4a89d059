package gateway

import (
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
	reply{Status: e.Status, ContentType: contentType(g.version), Body: e.Outcome().JSON(), RetryAfter: e.RetryAfter}.write(c)
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
