package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// IdentitySystem is the Task.identifier system of message identities.
const IdentitySystem = "https://fhirgw.example/fhir/sid/message-identity"

// FillerSystem is the identifier system of fillers, the Task's
// restriction.recipient: the configured filler ids a message was routed to.
const FillerSystem = "https://fhirgw.example/fhir/sid/filler"

// readTask is GET [base]/Task/{id}, with conditional reads.
func (g *Gateway) readTask(c *gin.Context) {
	ctx := c.Request.Context()
	m, err := g.ledger.Task(ctx, c.Param("id"))
	if errors.Is(err, ledger.ErrNotFound) {
		g.fail(c, edgeError(http.StatusNotFound, ErrNotFound, envelope.IssueNotFound, "", "there is no Task/%s", c.Param("id")))
		return
	}
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	if notModified(c, m.UpdatedAt) {
		return
	}
	outputs, err := g.ledger.Outputs(ctx, m.TaskID)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	g.writeFHIR(c, http.StatusOK, v, renderTask(m, outputs[m.TaskID]))
}

// readBundle is GET [base]/Bundle/{id}: a stored response message.
func (g *Gateway) readBundle(c *gin.Context) {
	ctx := c.Request.Context()
	r, err := g.ledger.Bundle(ctx, c.Param("id"))
	if errors.Is(err, ledger.ErrNotFound) {
		g.fail(c, edgeError(http.StatusNotFound, ErrNotFound, envelope.IssueNotFound, "", "there is no Bundle/%s", c.Param("id")))
		return
	}
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	if notModified(c, r.ReceivedAt) {
		return
	}
	v := g.version // an unmatched response belongs to no exchange
	if r.TaskID != "" {
		if m, err := g.ledger.Task(ctx, r.TaskID); err == nil {
			v, _ = envelope.ParseVersion(m.FHIRVersion)
		}
	}
	g.writeFHIR(c, http.StatusOK, v, r.Body)
}

// notModified sets ETag and Last-Modified for a resource last changed at
// updated, and answers 304 when the request's validators still hold.
func notModified(c *gin.Context, updated time.Time) bool {
	etag := fmt.Sprintf(`W/"%d"`, updated.UnixMilli())
	c.Header("ETag", etag)
	c.Header("Last-Modified", updated.UTC().Format(http.TimeFormat))
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == etag || t == "*" {
				c.Status(http.StatusNotModified)
				c.Abort()
				return true
			}
		}
		return false
	}
	if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		if since, err := http.ParseTime(ims); err == nil && !updated.Truncate(time.Second).After(since) {
			c.Status(http.StatusNotModified)
			c.Abort()
			return true
		}
	}
	return false
}

// renderTask is the FHIR Task of an exchange (the same JSON is valid R4 and R5).
func renderTask(m *ledger.Message, responses []ledger.Response) []byte {
	type ref struct {
		Reference string `json:"reference"`
	}
	type output struct {
		Type           envelope.CodeableConcept `json:"type"`
		ValueReference ref                      `json:"valueReference"`
	}
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	type focus struct {
		Identifier identifier `json:"identifier"`
		Display    string     `json:"display"`
	}
	type meta struct {
		LastUpdated string `json:"lastUpdated"`
	}
	type recipient struct {
		Identifier identifier `json:"identifier"`
	}
	type restriction struct {
		Recipient []recipient `json:"recipient"`
	}
	type task struct {
		ResourceType   string                   `json:"resourceType"`
		ID             string                   `json:"id"`
		Meta           meta                     `json:"meta"`
		Identifier     []identifier             `json:"identifier"`
		Status         string                   `json:"status"`
		BusinessStatus envelope.CodeableConcept `json:"businessStatus"`
		Intent         string                   `json:"intent"`
		Code           envelope.CodeableConcept `json:"code"`
		Focus          focus                    `json:"focus"`
		AuthoredOn     string                   `json:"authoredOn"`
		LastModified   string                   `json:"lastModified"`
		Restriction    *restriction             `json:"restriction,omitempty"`
		Output         []output                 `json:"output,omitempty"`
	}
	business := "queued for " + strings.Join(m.Fillers, ", ")
	if !m.RoutedAt.IsZero() {
		business = "routed to " + strings.Join(m.Fillers, ", ")
	}
	if m.BusinessStatus != "" {
		business = m.BusinessStatus
	}
	t := task{
		ResourceType: "Task", ID: m.TaskID, Meta: meta{LastUpdated: instant(m.UpdatedAt)},
		Identifier:     []identifier{{System: IdentitySystem, Value: m.Identity}},
		Status:         m.Status,
		BusinessStatus: envelope.CodeableConcept{Text: business},
		Intent:         "order",
		Code:           envelope.CodeableConcept{Text: m.Event},
		Focus:          focus{Identifier: identifier{System: IdentitySystem, Value: m.Identity}, Display: "the message " + m.Identity},
		AuthoredOn:     instant(m.ReceivedAt),
		LastModified:   instant(m.UpdatedAt),
	}
	if len(m.Fillers) > 0 {
		t.Restriction = &restriction{}
		for _, f := range m.Fillers {
			t.Restriction.Recipient = append(t.Restriction.Recipient, recipient{Identifier: identifier{System: FillerSystem, Value: f}})
		}
	}
	for _, r := range responses {
		t.Output = append(t.Output, output{
			Type:           envelope.CodeableConcept{Text: outputType(r.Code)},
			ValueReference: ref{Reference: "Bundle/" + r.BundleID},
		})
	}
	return envelope.Encode(t)
}

func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// outputType names a Task output: a response with its code, or progress.
func outputType(code string) string {
	if code == "progress" {
		return "progress"
	}
	return "response " + code
}
