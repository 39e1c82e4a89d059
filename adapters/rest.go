package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
)

// actionable is the tag that tells a filler a resource asks for action
// (FHIR workflow, option B).
var actionable = map[string]string{"system": "http://hl7.org/fhir/CodeSystem/common-tags", "code": "actionable"}

// RESTConfig configures a REST adapter.
type RESTConfig struct {
	// URL is the filler's FHIR REST base, e.g. https://lab.example/fhir.
	URL     string
	Headers map[string]string
	Timeout time.Duration
}

// REST delivers a message the way FHIR workflow option B does: it creates
// the message's focus resources on the filler's FHIR REST base in one
// transaction Bundle, each tagged actionable, and turns the filler's
// outcome into a response message for the placer. A 2xx is an ok response;
// a 4xx other than 408/429 is a fatal-error response carrying the filler's
// OperationOutcome (the filler rejected the content: resending cannot help);
// 408, 429, 5xx and connection errors are transient.
type REST struct {
	cfg    RESTConfig
	client *http.Client
	parser *envelope.Parser
}

var _ Adapter = (*REST)(nil)

// NewREST returns the adapter.
func NewREST(cfg RESTConfig) (*REST, error) {
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("adapters: rest: %q is not an http(s) URL", cfg.URL)
	}
	if err := checkHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("adapters: rest: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &REST{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, parser: envelope.NewParser(envelope.Options{})}, nil
}

// Deliver creates the focus resources and answers for the filler.
func (a *REST) Deliver(ctx context.Context, m Message) (Result, error) {
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	req, err := a.parser.Parse(m.Body, v)
	if err != nil {
		return Result{}, fmt.Errorf("%w: the message does not parse: %w", ErrPermanent, err)
	}
	tx, err := transaction(req)
	if err != nil {
		return Result{}, fmt.Errorf("%w: the transaction for filler %s cannot be built: %w", ErrPermanent, m.Filler, err)
	}
	resp, body, err := post(ctx, a.client, strings.TrimSuffix(a.cfg.URL, "/"), tx, m, a.cfg.Headers)
	if err != nil {
		return Result{}, err
	}
	res := Result{Status: resp.StatusCode}
	s := resp.StatusCode
	var code envelope.ResponseCode
	var outcome *envelope.OperationOutcome
	switch {
	case s >= 200 && s < 300:
		code = envelope.ResponseOK
		oo := envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityInformation, Code: envelope.IssueInformational,
			Diagnostics: fmt.Sprintf("filler %s created the request's resources (HTTP %d)", m.Filler, s)})
		outcome = &oo
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return res, withRetryAfter(fmt.Errorf("filler %s answered %d", m.Filler, s), retryAfter(resp.Header, time.Now()))
	default:
		code = envelope.ResponseFatalError
		outcome = fillerOutcome(body, m.Filler, s)
	}
	responder := envelope.Responder{Sender: envelope.Sender{Name: m.Filler, Software: "fhirgw rest adapter", Endpoint: a.cfg.URL}}
	answer, err := responder.Response(req, code, outcome)
	if err != nil {
		return res, fmt.Errorf("%w: the response for the placer cannot be built: %w", ErrPermanent, err)
	}
	res.Responses = [][]byte{answer}
	return res, nil
}

// transaction builds the transaction Bundle that creates req's focus
// resources, tagged actionable, keeping their fullUrls so that references
// between them resolve on the filler.
func transaction(req *envelope.Message) ([]byte, error) {
	var bundle struct {
		Entry []struct {
			FullURL  string                     `json:"fullUrl"`
			Resource map[string]json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(req.Raw, &bundle); err != nil {
		return nil, err
	}
	type entry struct {
		FullURL  string                     `json:"fullUrl,omitempty"`
		Resource map[string]json.RawMessage `json:"resource"`
		Request  map[string]string          `json:"request"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "transaction"}
	for _, ref := range req.Header.Focus {
		e, ok := req.Resolve(ref)
		if !ok {
			continue
		}
		i := entryIndex(req, e)
		if i < 0 || i >= len(bundle.Entry) {
			continue
		}
		res := bundle.Entry[i].Resource
		if err := tagActionable(res); err != nil {
			return nil, err
		}
		out.Entry = append(out.Entry, entry{FullURL: e.FullURL, Resource: res, Request: map[string]string{"method": "POST", "url": e.ResourceType}})
	}
	if len(out.Entry) == 0 {
		return nil, fmt.Errorf("the message has no focus resource to create")
	}
	return encodeJSON(out)
}

// encodeJSON is v as JSON (no HTML escaping), or why it cannot be: an
// error, never a panic, since the content comes from the placer.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// entryIndex is the position of e among req's entries.
func entryIndex(req *envelope.Message, e *envelope.Entry) int {
	for i := range req.Entries {
		if &req.Entries[i] == e {
			return i
		}
	}
	return -1
}

// tagActionable adds the actionable tag to a resource's meta.
func tagActionable(res map[string]json.RawMessage) error {
	meta := map[string]json.RawMessage{}
	if raw, ok := res["meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
	}
	var tags []any
	if raw, ok := meta["tag"]; ok {
		if err := json.Unmarshal(raw, &tags); err != nil {
			return fmt.Errorf("meta.tag: %w", err)
		}
	}
	tags = append(tags, actionable)
	raw, err := encodeJSON(tags)
	if err != nil {
		return fmt.Errorf("meta.tag: %w", err)
	}
	meta["tag"] = raw
	if res["meta"], err = encodeJSON(meta); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}

// fillerOutcome is the filler's OperationOutcome, or one that says what the
// filler answered.
func fillerOutcome(body []byte, filler string, status int) *envelope.OperationOutcome {
	var oo envelope.OperationOutcome
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" && len(oo.Issue) > 0 {
		oo.ID = ""
		return &oo
	}
	oo = envelope.NewOutcome(envelope.Issue{Severity: envelope.SeverityError, Code: envelope.IssueInvalid,
		Diagnostics: fmt.Sprintf("filler %s refused the request's resources (HTTP %d)", filler, status)})
	return &oo
}
