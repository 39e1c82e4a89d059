package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
)

// Target is a gateway that takes messages: its HTTP $process-message or
// its AMQP ingress.
type Target interface {
	// Send delivers one message and returns the gateway's immediate answer
	// and, when the transport has them, the later answers.
	Send(ctx context.Context, m Outgoing) (Exchange, error)
	// Close releases the target's connections.
	Close() error
}

// Outgoing is one message as sent.
type Outgoing struct {
	Body []byte
	// FHIRVersion is the content type's fhirVersion ("" for none).
	FHIRVersion string
	// Async asks for ?async=true (HTTP only).
	Async bool
}

// Answer is one answer from the gateway.
type Answer struct {
	// Status is the HTTP status (over AMQP, the fhirgw-status header).
	Status int
	Body   []byte
	// Location is the Task or Bundle the answer concerns.
	Location string
	// Duplicate is the gateway's mark on an answer replayed for a
	// duplicate message.
	Duplicate bool
}

// Exchange is what sending a message brought.
type Exchange struct {
	// Answer is the immediate answer.
	Answer Answer
	// Later carries the answers that follow (AMQP: the reply queue's
	// messages with the same correlation_id); nil over HTTP, where the
	// Task is polled instead.
	Later <-chan Answer
}

// NewTarget returns the target for a URL: http(s)://host/base for the HTTP
// API, amqp(s)://user:pass@host/vhost for the AMQP ingress.
func NewTarget(ctx context.Context, target string, opts TargetOptions) (Target, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	switch u.Scheme {
	case "http", "https":
		return newHTTPTarget(target, opts), nil
	case "amqp", "amqps":
		return dialAMQPTarget(ctx, target, opts)
	}
	return nil, fmt.Errorf("target %q: use an http(s):// FHIR base or an amqp(s):// broker URL", target)
}

// TargetOptions configures a target.
type TargetOptions struct {
	// APIKey authenticates HTTP requests (X-API-Key), the Task reads of an
	// AMQP target included.
	APIKey string
	// Timeout bounds one HTTP request (a synchronous POST waits for the
	// filler up to the route's syncTimeout).
	Timeout time.Duration
	// Exchange is the gateway's AMQP ingress exchange (default fhirgw.ingress).
	Exchange string
	// ReplyTo is the AMQP reply queue (default: a private queue declared
	// for the run, which needs configure permission).
	ReplyTo string
	// UserID is the AMQP user_id (default: the URL's user).
	UserID string
}

// issueCodes lists an OperationOutcome body's issue codes and its first
// diagnostics; nothing when body is no OperationOutcome.
func issueCodes(body []byte) (codes []string, diagnostics string) {
	var oo envelope.OperationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return nil, ""
	}
	for i, is := range oo.Issue {
		codes = append(codes, string(is.Code))
		if i == 0 {
			diagnostics = is.Diagnostics
		}
	}
	return codes, diagnostics
}

// responseCode is the MessageHeader.response.code of a message Bundle, or
// "" when body is no response message.
func responseCode(body []byte) string {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Response     *struct {
					Code string `json:"code"`
				} `json:"response"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" || len(b.Entry) == 0 {
		return ""
	}
	if h := b.Entry[0].Resource; h.ResourceType == "MessageHeader" && h.Response != nil {
		return h.Response.Code
	}
	return ""
}

// isTask reports whether a location names a Task.
func isTask(location string) bool { return strings.Contains(location, "/Task/") }
