package ack

import (
	"context"
	"net/url"
)

// replyScheme marks a callback that is an AMQP reply queue rather than an
// HTTP endpoint.
const replyScheme = "amqp-reply"

// ReplyURL is the callback of an AMQP placer: answers go to queue with
// correlationID.
func ReplyURL(queue, correlationID string) string {
	u := url.URL{Scheme: replyScheme, Opaque: url.PathEscape(queue), RawQuery: url.Values{"correlation_id": {correlationID}}.Encode()}
	return u.String()
}

// ParseReplyURL reads a callback made by ReplyURL; ok is false for any
// other callback.
func ParseReplyURL(callback string) (queue, correlationID string, ok bool) {
	u, err := url.Parse(callback)
	if err != nil || u.Scheme != replyScheme {
		return "", "", false
	}
	queue, err = url.PathUnescape(u.Opaque)
	if err != nil || queue == "" {
		return "", "", false
	}
	return queue, u.Query().Get("correlation_id"), true
}

// Reply is an answer owed to an AMQP placer.
type Reply struct {
	Queue         string
	CorrelationID string
	TaskID        string
	BundleID      string
	FHIRVersion   string
	Body          []byte
}

// Replier publishes answers to AMQP reply queues. Reply returns once the
// broker holds the answer; any error is retried with backoff.
type Replier interface {
	Reply(ctx context.Context, r Reply) error
}
