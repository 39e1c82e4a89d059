package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fhirgw/fhirgw/ack"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// Search paging: _count's default and maximum.
const (
	defaultCount = 50
	maxCount     = 1000
)

// cursorParam continues a paged search after the lastUpdated (µs) it names.
const cursorParam = "_cursor"

// searchTasks is GET [base]/Task?...: a searchset Bundle of the caller's
// exchange Tasks, oldest change first (or newest, with _sort=-_lastUpdated),
// paged with next links, for placers and fillers that poll.
func (g *Gateway) searchTasks(c *gin.Context) {
	params := c.Request.URL.Query()
	q, e := taskQuery(params)
	if e != nil {
		g.fail(c, e)
		return
	}
	count := q.Limit
	q.Limit = count + 1 // one more tells whether there is a next page
	tasks, outputs, total, err := g.core.Search(c.Request.Context(), party(caller(c)), q)
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	more := len(tasks) > count
	tasks = tasks[:min(len(tasks), count)]
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
		Total        *int    `json:"total,omitempty"`
		Link         []link  `json:"link"`
		Entry        []entry `json:"entry,omitempty"`
	}
	b := bundle{ResourceType: "Bundle", Type: "searchset", Link: []link{{Relation: "self", URL: g.base + "/Task?" + params.Encode()}}}
	if q.Total {
		b.Total = &total
	}
	if more {
		next := cloneValues(params)
		next.Set(cursorParam, strconv.FormatInt(tasks[len(tasks)-1].UpdatedAt.UnixMicro(), 10))
		b.Link = append(b.Link, link{Relation: "next", URL: g.base + "/Task?" + next.Encode()})
	}
	for _, m := range tasks {
		b.Entry = append(b.Entry, entry{FullURL: g.base + "/Task/" + m.TaskID, Resource: renderTask(m, ack.OutputsAt(m, outputs[m.TaskID])),
			Search: search{Mode: "match"}})
	}
	g.writeFHIR(c, http.StatusOK, g.version, envelope.Encode(b))
}

// taskQuery reads the search parameters of GET [base]/Task.
func taskQuery(params url.Values) (ledger.TaskQuery, *Error) {
	q := ledger.TaskQuery{Limit: defaultCount}
	bad := func(format string, args ...any) (ledger.TaskQuery, *Error) {
		return q, edgeError(http.StatusBadRequest, ErrSearch, envelope.IssueType("value"), "", format, args...)
	}
	if id := params.Get("identifier"); id != "" {
		q.Identity = strings.TrimPrefix(id, IdentitySystem+"|")
	}
	if p := params.Get("part-of"); p != "" {
		q.PartOf = strings.TrimPrefix(p, "Task/")
	}
	if o := params.Get("owner:identifier"); o != "" {
		filler, ok := strings.CutPrefix(o, FillerSystem+"|")
		if !ok {
			return bad("owner:identifier=%s: name a filler as %s|<filler>", o, FillerSystem)
		}
		q.Owner = filler
	}
	for _, st := range params["status"] {
		for _, s := range strings.Split(st, ",") {
			if !ledger.Status(s).Known() {
				return bad("status=%s is not a Task status this gateway uses", s)
			}
			q.Statuses = append(q.Statuses, ledger.Status(s))
		}
	}
	for _, lu := range params["_lastUpdated"] {
		if err := setLastUpdated(&q, lu); err != nil {
			return bad("_lastUpdated=%s: %v; use gt, ge, lt or le followed by an instant, e.g. gt2026-11-22T10:00:00.000001Z", lu, err)
		}
	}
	if v := params.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return bad("_count=%s is not a positive whole number", v)
		}
		q.Limit = min(n, maxCount)
	}
	switch s := params.Get("_sort"); s {
	case "", "_lastUpdated":
	case "-_lastUpdated":
		q.Descending = true
	default:
		return bad("_sort=%s is not supported; use _lastUpdated or -_lastUpdated", s)
	}
	switch t := params.Get("_total"); t {
	case "", "none", "estimate":
	case "accurate":
		q.Total = true
	default:
		return bad("_total=%s is not one of none, estimate, accurate", t)
	}
	if v := params.Get(cursorParam); v != "" {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("%s=%s is not a cursor this gateway gave", cursorParam, v)
		}
		q.Cursor = time.UnixMicro(us)
	}
	return q, nil
}

// setLastUpdated reads one _lastUpdated=<prefix><instant> into q's bounds.
func setLastUpdated(q *ledger.TaskQuery, v string) error {
	prefix, value := v[:min(2, len(v))], v[min(2, len(v)):]
	var t time.Time
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err = time.Parse(layout, value); err == nil {
			break
		}
	}
	if err != nil {
		return errors.New("not an instant")
	}
	t = t.Truncate(time.Microsecond)
	switch prefix {
	case "gt":
		q.UpdatedAfter = t
	case "ge":
		q.UpdatedFrom = t
	case "lt":
		q.UpdatedBefore = t
	case "le":
		q.UpdatedUntil = t
	default:
		return fmt.Errorf("the prefix %q is not supported", prefix)
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// taskHistory is GET [base]/Task/{id}/_history: a history Bundle of every
// version of the Task, newest first.
func (g *Gateway) taskHistory(c *gin.Context) {
	versions, outputs, err := g.core.History(c.Request.Context(), party(caller(c)), c.Param("id"))
	if err != nil {
		g.fail(c, asEdgeError(err))
		return
	}
	type request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	}
	type response struct {
		Status       string `json:"status"`
		Etag         string `json:"etag"`
		LastModified string `json:"lastModified"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  request         `json:"request"`
		Response response        `json:"response"`
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
		Entry        []entry `json:"entry"`
	}
	b := bundle{ResourceType: "Bundle", Type: "history", Total: len(versions),
		Link: []link{{Relation: "self", URL: g.base + "/Task/" + c.Param("id") + "/_history"}}}
	v := g.version
	for _, m := range versions {
		v, _ = envelope.ParseVersion(m.FHIRVersion)
		req, status := request{Method: "PUT", URL: "Task/" + m.TaskID}, "200 OK"
		if m.Version == 1 {
			req, status = request{Method: "POST", URL: "Task"}, "201 Created"
		}
		b.Entry = append(b.Entry, entry{
			FullURL: g.base + "/Task/" + m.TaskID, Resource: renderTask(m, ack.OutputsAt(m, outputs)), Request: req,
			Response: response{Status: status, Etag: etag(m), LastModified: lastUpdated(m.UpdatedAt)},
		})
	}
	g.writeFHIR(c, http.StatusOK, v, envelope.Encode(b))
}
