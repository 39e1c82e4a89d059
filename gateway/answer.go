package gateway

import (
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// fail answers with an edge error: its status, Retry-After when set, and its
// OperationOutcome.
func (g *Gateway) fail(c *gin.Context, e *Error) { g.errorReply(e).write(c) }

// writeFHIR answers with FHIR JSON bytes of version v.
func (g *Gateway) writeFHIR(c *gin.Context, status int, v envelope.Version, body []byte) {
	c.Data(status, contentType(v), body)
	c.Abort()
}
