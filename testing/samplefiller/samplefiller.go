// Package samplefiller is a filler for demos and tests: it consumes its
// RabbitMQ queue (fhirgw.filler.<id>) and answers every message with a
// response message POSTed to the gateway's $process-message, as a lab would.
//
// What it does with each message is a script of Steps (Config.Script,
// Config.Steps): Respond with a response code, report Progress, Wait, or
// Fail to process the message. Without a script it follows Config.Code,
// Delay, Progress and Silent.
package samplefiller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
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
	// Script, when set, gives the steps the filler runs for each message it
	// takes, in order (see Step). It is called once per delivery, on the
	// filler's goroutine; a nil or empty script acknowledges the delivery
	// and answers nothing.
	Script func(req *envelope.Message) []Step
	// Steps is the script of every message when Script is nil.
	//
	// With neither, the script is Wait(Delay) when Delay is set, then
	// Respond(Code), then, when Progress is set and Code is ok,
	// Progress("in-progress", "specimen received") and
	// Progress("completed", "results final"); Silent makes it empty.
	Steps []Step
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

// Step is one thing the filler does with a message: build steps with
// Respond, Progress, Wait and Fail.
//
// Messages are handled one at a time, in queue order, each running its
// whole script before the next starts. An answer (Respond, Progress) is
// POSTed to the gateway's $process-message?async=true, or published to the
// ingress (Config.Ingress). While the gateway is away (a connection error or
// a 5xx), the same answer (same identity) is retried in place, backing off
// from 200ms to 2s. An answer the gateway refuses (another 4xx) is logged
// and counted (Filler.Refused), and ends the script. When the script ends
// the delivery is acknowledged, except after Fail. When the filler stops in
// the middle of a script, the delivery is requeued (and the whole script
// runs again on redelivery).
type Step struct {
	kind     stepKind
	code     envelope.ResponseCode
	status   string
	business string
	delay    time.Duration
}

type stepKind uint8

const (
	respondStep stepKind = iota + 1
	progressStep
	waitStep
	failStep
)

// Respond answers the message with a response message of this code
// (response.identifier quoting the message's identity). A code other than
// ok carries an OperationOutcome in response.details. The gateway moves the
// Task as ack.Progress says: ok accepts it, fatal-error rejects it, and
// transient-error leaves its status alone (businessStatus "response
// transient-error"); a synchronous POST gets this response whatever its
// code.
func Respond(code envelope.ResponseCode) Step { return Step{kind: respondStep, code: code} }

// Progress reports progress: a message whose event is the request's event
// code plus "-progress" (no route takes it), carrying a Task with this FHIR
// Task status (in-progress, completed, failed...) and businessStatus text,
// whose focus and basedOn point at the request's first focus resource. The
// gateway ties it to the request by that focus (over AMQP, by the
// correlation_id), so the request needs a focus resource with an id. The
// gateway's Task takes the status when it is a step forward, and the
// businessStatus.
func Progress(status, business string) Step {
	return Step{kind: progressStep, status: status, business: business}
}

// Wait pauses the script for d, the delivery still unacknowledged.
func Wait(d time.Duration) Step { return Step{kind: waitStep, delay: d} }

// Fail makes the filler fail to process the message: it rejects the
// delivery without requeue, so the broker dead-letters it to the filler's
// dead queue (<prefix>.filler.<id>.dead, Topology.DeadQueue), and the
// script ends there. The gateway is not told: its Task keeps the status it
// had (requested, unless earlier steps answered) until the route's
// ackDeadline passes, which fails the Task ("failed", businessStatus
// "acknowledgement overdue: ...") and sends the placer a transient-error
// response.
func Fail() Step { return Step{kind: failStep} }

// String describes the step, e.g. "respond fatal-error" or "wait 1s".
func (s Step) String() string {
	switch s.kind {
	case respondStep:
		return "respond " + string(s.code)
	case progressStep:
		return fmt.Sprintf("progress %s (%s)", s.status, s.business)
	case waitStep:
		return "wait " + s.delay.String()
	case failStep:
		return "fail"
	}
	return "no step"
}

// Filler answers the messages of one queue.
type Filler struct {
	cfg       Config
	out       *router.Confirmer // set in Run when answering over AMQP
	parser    *envelope.Parser
	responder envelope.Responder
	answered  atomic.Int64
	refused   atomic.Int64
	mu        sync.Mutex
	messages  []string
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

// Received is how many messages the filler has taken from its queue,
// redeliveries included.
func (f *Filler) Received() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.messages)
}

// Answered is how many responses (Respond steps) the gateway accepted;
// progress messages are not counted.
func (f *Filler) Answered() int { return int(f.answered.Load()) }

// Refused is how many answers (responses and progress) the gateway refused
// with a 4xx.
func (f *Filler) Refused() int { return int(f.refused.Load()) }

// Messages returns the message_id (the gateway's message identity) of each
// delivery the filler has taken, in order, redeliveries included.
func (f *Filler) Messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.messages...)
}

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
			f.mu.Lock()
			f.messages = append(f.messages, d.MessageId)
			f.mu.Unlock()
			f.handle(ctx, d)
		}
	}
}

// script is the steps for req: Config.Script, Config.Steps, or the ones the
// plain fields describe.
func (f *Filler) script(req *envelope.Message) []Step {
	switch {
	case f.cfg.Script != nil:
		return f.cfg.Script(req)
	case f.cfg.Steps != nil:
		return f.cfg.Steps
	}
	var steps []Step
	if f.cfg.Delay > 0 {
		steps = append(steps, Wait(f.cfg.Delay))
	}
	steps = append(steps, Respond(f.cfg.Code))
	if f.cfg.Progress && f.cfg.Code == envelope.ResponseOK {
		steps = append(steps, Progress("in-progress", "specimen received"), Progress("completed", "results final"))
	}
	return steps
}

// handle runs the message's script and settles the delivery (see Step).
func (f *Filler) handle(ctx context.Context, d amqp.Delivery) {
	if f.cfg.Silent && f.cfg.Script == nil && f.cfg.Steps == nil {
		_ = d.Ack(false)
		return
	}
	v, _ := envelope.ParseVersion(fmt.Sprint(d.Headers[router.HeaderFHIRVersion]))
	req, err := f.parser.Parse(d.Body, v)
	if err != nil {
		f.cfg.Log.Warn("not a message; dropped", zap.String("messageId", d.MessageId), zap.Error(err))
		_ = d.Reject(false)
		return
	}
	for _, step := range f.script(req) {
		var body []byte
		switch step.kind {
		case waitStep:
			select {
			case <-time.After(step.delay):
			case <-ctx.Done():
				_ = d.Nack(false, true)
				return
			}
			continue
		case failStep:
			f.cfg.Log.Info("failing the message as scripted; dead-lettered", zap.String("messageId", d.MessageId))
			_ = d.Reject(false)
			return
		case respondStep:
			var details *envelope.OperationOutcome
			if step.code != envelope.ResponseOK {
				oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: envelope.IssueInvalid, Diagnostics: "the sample filler rejects this message as configured"})
				details = &oo
			}
			if body, err = f.responder.Response(req, step.code, details); err != nil {
				f.cfg.Log.Warn("cannot answer", zap.String("messageId", d.MessageId), zap.Error(err))
				_ = d.Reject(false)
				return
			}
		case progressStep:
			body = f.progressMessage(req, step.status, step.business)
		default:
			continue
		}
		switch f.deliver(ctx, d, body, req.Version, step) {
		case refused:
			f.refused.Add(1)
			_ = d.Ack(false)
			return
		case interrupted:
			_ = d.Nack(false, true)
			return
		}
		if step.kind == respondStep {
			f.answered.Add(1)
		}
	}
	_ = d.Ack(false)
}

type outcome uint8

const (
	accepted outcome = iota
	refused
	interrupted
)

// deliver sends one answer until the gateway takes it (accepted) or refuses
// it (refused), or ctx ends (interrupted).
func (f *Filler) deliver(ctx context.Context, d amqp.Delivery, body []byte, v envelope.Version, step Step) outcome {
	backoff := 200 * time.Millisecond
	for {
		status, err := f.send(ctx, d, body, v)
		switch {
		case err == nil && status < 300:
			return accepted
		case err == nil && status < 500:
			f.cfg.Log.Warn("the gateway refused the answer", zap.String("messageId", d.MessageId), zap.Stringer("step", step), zap.Int("status", status))
			return refused
		}
		f.cfg.Log.Warn("the gateway is away; retrying the answer", zap.String("messageId", d.MessageId), zap.Stringer("step", step),
			zap.Int("status", status), zap.Error(err))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return interrupted
		}
		backoff = min(2*backoff, 2*time.Second)
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
func (f *Filler) progressMessage(req *envelope.Message, status, business string) []byte {
	focus := ""
	if len(req.Header.Focus) > 0 {
		if e, ok := req.Resolve(req.Header.Focus[0]); ok && e.ID != "" {
			focus = e.ResourceType + "/" + e.ID
		}
	}
	id, task := uuid.NewString(), uuid.NewString()
	source, identifier := fmt.Sprintf(`"endpoint":%q`, f.cfg.Endpoint), ""
	if req.Version == envelope.R5 {
		source = fmt.Sprintf(`"endpointUrl":%q`, f.cfg.Endpoint)
		identifier = fmt.Sprintf(`"identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:%s"},`, id)
	}
	ev := req.Header.Event
	return []byte(fmt.Sprintf(`{"resourceType":"Bundle","id":%q,%s"type":"message","timestamp":%q,"entry":[
{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"MessageHeader","id":%q,
 "eventCoding":{"system":%q,"code":%q},"source":{"name":%q,%s},"focus":[{"reference":"urn:uuid:%s"}]}},
{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Task","id":%q,"status":%q,"intent":"order",
 "businessStatus":{"text":%q},"basedOn":[{"reference":%q}],"focus":{"reference":%q}}}]}`,
		id, identifier, time.Now().UTC().Format(time.RFC3339), id, id, ev.System, ev.Code+"-progress", f.cfg.Name, source, task,
		task, task, status, business, focus, focus))
}
