package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// searchTasks is GET [base]/Task?identifier=..&_lastUpdated=gt..&status=..
// [&_count=..]: a searchset Bundle of the matching Tasks, most recently
// updated first, for placers that poll.
func (g *Gateway) searchTasks(c *gin.Context) {
	q := ledger.TaskQuery{Limit: 100}
	if id := c.Query("identifier"); id != "" {
		q.Identity = strings.TrimPrefix(id, IdentitySystem+"|")
	}
	if lu := c.Query("_lastUpdated"); lu != "" {
		after, err := parseLastUpdated(lu)
		if err != nil {
			g.fail(c, edgeError(http.StatusBadRequest, err, envelope.IssueNotSupported, "",
				"_lastUpdated=%s: use gt or ge followed by an instant, e.g. gt2026-11-22T10:00:00Z", lu))
			return
		}
		q.UpdatedAfter = after
	}
	if st := c.Query("status"); st != "" {
		q.Statuses = strings.Split(st, ",")
	}
	if n, err := strconv.Atoi(c.Query("_count")); err == nil && n > 0 {
		q.Limit = min(n, 1000)
	}
	ctx := c.Request.Context()
	tasks, err := g.ledger.SearchTasks(ctx, q)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	type search struct {
		Mode string `json:"mode"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   search          `json:"search"`
	}
	type link struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}
	type bundle struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Total        int     `json:"total"`
		Link         []link  `json:"link"`
		Entry        []entry `json:"entry,omitempty"`
	}
	b := bundle{ResourceType: "Bundle", Type: "searchset", Total: len(tasks),
		Link: []link{{Relation: "self", URL: g.base + "/Task?" + c.Request.URL.RawQuery}}}
	ids := make([]string, len(tasks))
	for i, m := range tasks {
		ids[i] = m.TaskID
	}
	outputs, err := g.ledger.Outputs(ctx, ids...)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	for _, m := range tasks {
		b.Entry = append(b.Entry, entry{FullURL: g.base + "/Task/" + m.TaskID, Resource: renderTask(m, outputs[m.TaskID]), Search: search{Mode: "match"}})
	}
	g.writeFHIR(c, http.StatusOK, g.version, envelope.Encode(b))
}

// parseLastUpdated reads gt<instant> or ge<instant> as "updated after".
func parseLastUpdated(v string) (time.Time, error) {
	prefix, value := v[:min(2, len(v))], v[min(2, len(v)):]
	var t time.Time
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err = time.Parse(layout, value); err == nil {
			break
		}
	}
	if err != nil {
		return time.Time{}, err
	}
	switch prefix {
	case "gt":
		return t, nil
	case "ge":
		return t.Add(-time.Millisecond), nil
	}
	return time.Time{}, errUnsupportedPrefix
}

var errUnsupportedPrefix = errors.New("unsupported _lastUpdated prefix")
