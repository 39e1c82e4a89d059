package gateway

import (
	"fmt"
	"net/http"
	"strconv"
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

// readTask is GET [base]/Task/{id}, with conditional reads, for the
// exchanges the caller may see (any other is 404, as a missing one).
func (g *Gateway) readTask(c *gin.Context) {
	m, outs, err := g.core.Task(c.Request.Context(), party(caller(c)), c.Param("id"))
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	if notModified(c, m) {
		return
	}
	g.writeTask(c, m, outs)
}

// readTaskVersion is GET [base]/Task/{id}/_history/{vid}.
func (g *Gateway) readTaskVersion(c *gin.Context) {
	vid, err := strconv.Atoi(c.Param("vid"))
	if err != nil || vid < 1 {
		g.fail(c, edgeError(http.StatusNotFound, ErrNotFound, envelope.IssueNotFound, "", "there is no Task/%s/_history/%s", c.Param("id"), c.Param("vid")))
		return
	}
	m, outs, err := g.core.TaskVersion(c.Request.Context(), party(caller(c)), c.Param("id"), vid)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	c.Header("ETag", etag(m))
	c.Header("Last-Modified", m.UpdatedAt.UTC().Format(http.TimeFormat))
	g.writeTask(c, m, outs)
}

// writeTask answers 200 with the Task of m listing outs.
func (g *Gateway) writeTask(c *gin.Context, m *ledger.Message, outs []ledger.Response) {
	v, _ := envelope.ParseVersion(m.FHIRVersion)
	g.writeFHIR(c, http.StatusOK, v, renderTask(m, outs))
}

// readBundle is GET [base]/Bundle/{id}: a stored response message, if the
// caller may see its exchange.
func (g *Gateway) readBundle(c *gin.Context) {
	r, v, err := g.core.Bundle(c.Request.Context(), party(caller(c)), c.Param("id"), g.version)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	if notModifiedAt(c, fmt.Sprintf(`W/"%d"`, r.ReceivedAt.UnixMilli()), r.ReceivedAt) {
		return
	}
	g.writeFHIR(c, http.StatusOK, v, r.Body)
}

// etag is the ETag of a Task version: W/"<versionId>".
func etag(m *ledger.Message) string { return `W/"` + strconv.Itoa(m.Version) + `"` }

// notModified sets ETag and Last-Modified for a Task and answers 304 when
// the request's validators still hold.
func notModified(c *gin.Context, m *ledger.Message) bool {
	return notModifiedAt(c, etag(m), m.UpdatedAt)
}

// notModifiedAt sets ETag and Last-Modified and answers 304 when
// If-None-Match names the ETag, or (without If-None-Match) when the
// resource has not changed since the start of the If-Modified-Since second:
// HTTP dates have whole seconds, so a change within that second answers 200.
func notModifiedAt(c *gin.Context, tag string, updated time.Time) bool {
	c.Header("ETag", tag)
	c.Header("Last-Modified", updated.UTC().Format(http.TimeFormat))
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == tag || t == "*" {
				c.Status(http.StatusNotModified)
				c.Abort()
				return true
			}
		}
		return false
	}
	if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		if since, err := http.ParseTime(ims); err == nil && updated.Before(since) {
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
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	}
	type owner struct {
		Identifier identifier `json:"identifier"`
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
		PartOf         []ref                    `json:"partOf,omitempty"`
		Focus          focus                    `json:"focus"`
		Owner          *owner                   `json:"owner,omitempty"`
		AuthoredOn     string                   `json:"authoredOn"`
		LastModified   string                   `json:"lastModified"`
		Restriction    *restriction             `json:"restriction,omitempty"`
		Output         []output                 `json:"output,omitempty"`
	}
	business := m.BusinessStatus
	if business == "" {
		business = string(m.Status)
	}
	t := task{
		ResourceType: "Task", ID: m.TaskID, Meta: meta{VersionID: strconv.Itoa(m.Version), LastUpdated: lastUpdated(m.UpdatedAt)},
		Identifier:     []identifier{{System: IdentitySystem, Value: m.Identity}},
		Status:         string(m.Status),
		BusinessStatus: envelope.CodeableConcept{Text: business},
		Intent:         "order",
		Code:           envelope.CodeableConcept{Text: m.Event},
		Focus:          focus{Identifier: identifier{System: IdentitySystem, Value: m.Identity}, Display: "the message " + m.Identity},
		AuthoredOn:     instant(m.ReceivedAt),
		LastModified:   lastUpdated(m.UpdatedAt),
	}
	if len(m.Fillers) == 1 {
		t.Owner = &owner{Identifier: identifier{System: FillerSystem, Value: m.Fillers[0]}}
	}
	if m.PartOf != "" {
		t.PartOf = []ref{{Reference: "Task/" + m.PartOf}}
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

// lastUpdated writes a change instant at the microseconds it is unique at,
// so that _lastUpdated=gt<it> selects exactly the later changes.
func lastUpdated(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// outputType names a Task output: a response with its code, or progress.
func outputType(code string) string {
	if code == "progress" {
		return "progress"
	}
	return "response " + code
}
