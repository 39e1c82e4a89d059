// Package samplefiller is a filler for demos and tests: it consumes its
// RabbitMQ queue (fhirgw.filler.<id>) and answers every message with a
// response message POSTed to the gateway's $process-message, as a lab would.
package samplefiller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// Config configures a Filler.
type Config struct {
	// AMQPURL and Queue are where the filler's messages wait.
	AMQPURL string
	Queue   string
	// GatewayURL is the gateway's FHIR base, e.g. http://127.0.0.1:8080/fhir.
	GatewayURL string
	// Code answers every message (default ok); Silent answers nothing.
	Code   envelope.ResponseCode
	Silent bool
	// Delay waits before answering.
	Delay time.Duration
	// Progress follows an ok response with two progress messages: a Task
	// in progress, then completed, pointing at the request's focus.
	Progress bool
	// Name and Endpoint describe the filler as the source of its responses.
	Name     string
	Endpoint string
	// APIKey authenticates the filler to a gateway that requires it.
	APIKey string
	// Ingress, when set, is the gateway's AMQP ingress exchange: answers are
	// published there (with user_id UserID and the request's
	// correlation_id), as an AMQP partner filler does, instead of POSTed.
	Ingress string
	UserID  string
	Log     *zap.Logger
	Client  *http.Client
}

// Filler answers the messages of one queue.
type Filler struct {
	cfg       Config
	out       *router.Confirmer // set in Run when answering over AMQP
	parser    *envelope.Parser
	responder envelope.Responder
	received  atomic.Int64
	answered  atomic.Int64
}

// New returns a Filler; Run starts it.
func New(cfg Config) *Filler {
	if cfg.Code == "" {
		cfg.Code = envelope.ResponseOK
	}
	if cfg.Name == "" {
		cfg.Name = "sample filler"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "http://sample-filler.invalid/fhir"
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Filler{
		cfg:       cfg,
		parser:    envelope.NewParser(envelope.Options{}),
		responder: envelope.Responder{Sender: envelope.Sender{Name: cfg.Name, Software: "fhirgw sample filler", Endpoint: cfg.Endpoint}},
	}
}

// Received is how many messages the filler has taken from its queue.
func (f *Filler) Received() int { return int(f.received.Load()) }

// Answered is how many responses the gateway accepted.
func (f *Filler) Answered() int { return int(f.answered.Load()) }

// Run consumes until ctx ends.
func (f *Filler) Run(ctx context.Context) error {
	conn, err := amqp.DialConfig(f.cfg.AMQPURL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "sample filler " + f.cfg.Queue}})
	if err != nil {
		return fmt.Errorf("samplefiller: dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("samplefiller: channel: %w", err)
	}
	if f.cfg.Ingress != "" {
		if f.out, err = router.NewConfirmer(conn); err != nil {
			return fmt.Errorf("samplefiller: %w", err)
		}
	}
	if err := ch.Qos(32, 0, false); err != nil {
		return fmt.Errorf("samplefiller: qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, f.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("samplefiller: consume %s: %w", f.cfg.Queue, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("samplefiller: %s: the broker closed the consumer", f.cfg.Queue)
			}
			f.received.Add(1)
			f.handle(ctx, d)
		}
	}
}

// handle answers one delivery and settles it: ack once answered (or when the
// gateway refuses the answer for good), requeue when the gateway is away.
func (f *Filler) handle(ctx context.Context, d amqp.Delivery) {
	if f.cfg.Silent {
		_ = d.Ack(false)
		return
	}
	v, _ := envelope.ParseVersion(fmt.Sprint(d.Headers["fhirgw-fhir-version"]))
	req, err := f.parser.Parse(d.Body, v)
	if err != nil {
		f.cfg.Log.Warn("not a message; dropped", zap.String("messageId", d.MessageId), zap.Error(err))
		_ = d.Reject(false)
		return
	}
	if f.cfg.Delay > 0 {
		select {
		case <-time.After(f.cfg.Delay):
		case <-ctx.Done():
			_ = d.Nack(false, true)
			return
		}
	}
	var details *envelope.OperationOutcome
	if f.cfg.Code != envelope.ResponseOK {
		oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: envelope.IssueInvalid, Diagnostics: "the sample filler rejects this message as configured"})
		details = &oo
	}
	resp, err := f.responder.Response(req, f.cfg.Code, details)
	if err != nil {
		f.cfg.Log.Warn("cannot answer", zap.String("messageId", d.MessageId), zap.Error(err))
		_ = d.Reject(false)
		return
	}
	status, err := f.send(ctx, d, resp, req.Version)
	switch {
	case err == nil && status < 300:
		f.answered.Add(1)
		if f.cfg.Progress && f.cfg.Code == envelope.ResponseOK {
			for _, step := range []struct{ status, business string }{{"in-progress", "specimen received"}, {"completed", "results final"}} {
				if _, err := f.send(ctx, d, progressMessage(req, step.status, step.business), req.Version); err != nil {
					f.cfg.Log.Warn("reporting progress failed", zap.String("messageId", d.MessageId), zap.Error(err))
				}
			}
		}
		_ = d.Ack(false)
	case err == nil && status < 500:
		f.cfg.Log.Warn("the gateway refused the response", zap.String("messageId", d.MessageId), zap.Int("status", status))
		_ = d.Ack(false)
	default:
		f.cfg.Log.Warn("the gateway is away; message requeued", zap.String("messageId", d.MessageId), zap.Int("status", status), zap.Error(err))
		time.Sleep(200 * time.Millisecond)
		_ = d.Nack(false, true)
	}
}

// send hands an answer to the gateway: published to its ingress (202 once
// the broker holds it) or POSTed to $process-message.
func (f *Filler) send(ctx context.Context, d amqp.Delivery, body []byte, v envelope.Version) (int, error) {
	if f.out == nil {
		return f.post(ctx, body, v)
	}
	err := f.out.Publish(ctx, f.cfg.Ingress, "", amqp.Publishing{
		ContentType: "application/fhir+json; fhirVersion=" + v.String(), DeliveryMode: amqp.Persistent,
		UserId: f.cfg.UserID, CorrelationId: d.CorrelationId, MessageId: uuid.NewString(), Body: body,
	})
	if err != nil {
		return 0, err
	}
	return http.StatusAccepted, nil
}

func (f *Filler) post(ctx context.Context, body []byte, v envelope.Version) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.GatewayURL+"/$process-message?async=true", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json; fhirVersion="+v.String())
	if f.cfg.APIKey != "" {
		req.Header.Set("X-API-Key", f.cfg.APIKey)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// progressMessage is a message carrying a Task of the given status whose
// focus and basedOn point at the request's first focus resource.
func progressMessage(req *envelope.Message, status, business string) []byte {
	focus := ""
	if len(req.Header.Focus) > 0 {
		if e, ok := req.Resolve(req.Header.Focus[0]); ok && e.ID != "" {
			focus = e.ResourceType + "/" + e.ID
		}
	}
	id, task := uuid.NewString(), uuid.NewString()
	source, identifier := `"endpoint":"http://sample-filler.invalid/fhir"`, ""
	if req.Version == envelope.R5 {
		source = `"endpointUrl":"http://sample-filler.invalid/fhir"`
		identifier = fmt.Sprintf(`"identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:%s"},`, id)
	}
	ev := req.Header.Event
	return []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":%q,%s"type":"message","timestamp":%q,"entry":[
{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"MessageHeader","id":%q,
 "eventCoding":{"system":%q,"code":%q},"source":{"name":"sample filler",%s},"focus":[{"reference":"urn:uuid:%s"}]}},
{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Task","id":%q,"status":%q,"intent":"order",
 "businessStatus":{"text":%q},"basedOn":[{"reference":%q}],"focus":{"reference":%q}}}]}`,
		id, identifier, time.Now().UTC().Format(time.RFC3339), id, id, ev.System, ev.Code+"-progress", source, task,
		task, task, status, business, focus, focus))
}
