package gateway

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// processMessage is POST [base]/$process-message: the HTTP edge of submit.
func (g *Gateway) processMessage(c *gin.Context) {
	v, e := g.requestVersion(c.Request)
	if e == nil {
		var body []byte
		if body, e = g.readBody(c); e == nil {
			g.submit(c.Request.Context(), ack.Submission{
				Body: body, Version: v, From: party(caller(c)), Async: c.Query("async") == "true",
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
