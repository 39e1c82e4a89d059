package router

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
)

// ErrNoRoute: a valid message whose event no route accepts (HTTP 422).
var ErrNoRoute = errors.New("no route for the event")

// Route sends the messages of one event to fillers.
type Route struct {
	// Event as configured: "system|code" for a Coding ("|code" for a Coding
	// without system), or an eventUri / eventCanonical.
	Event       string
	Fillers     []string
	SyncTimeout time.Duration
	AckDeadline time.Duration
	CancelEvent string
}

// Table is an ordered list of routes: the first match wins. It is immutable
// and safe for concurrent use.
type Table struct {
	routes []Route
}

// NewTable checks and orders routes.
func NewTable(routes []Route) (*Table, error) {
	for i, r := range routes {
		if r.Event == "" || len(r.Fillers) == 0 {
			return nil, fmt.Errorf("route %d: an event and at least one filler are required", i)
		}
	}
	return &Table{routes: append([]Route(nil), routes...)}, nil
}

// Routes returns the routes in order.
func (t *Table) Routes() []Route { return append([]Route(nil), t.routes...) }

// Match returns the first route accepting ev, or ErrNoRoute.
func (t *Table) Match(ev envelope.Event) (Route, error) {
	for _, r := range t.routes {
		if matches(r.Event, ev) {
			return r, nil
		}
	}
	return Route{}, fmt.Errorf("%w %s", ErrNoRoute, ev)
}

// CancelRoute returns the route whose cancelEvent is ev: ev's messages
// cancel that route's orders.
func (t *Table) CancelRoute(ev envelope.Event) (Route, bool) {
	for _, r := range t.routes {
		if r.CancelEvent != "" && matches(r.CancelEvent, ev) {
			return r, true
		}
	}
	return Route{}, false
}

// EventMatches reports whether a configured event pattern (as in
// Route.Event) names ev.
func EventMatches(pattern string, ev envelope.Event) bool { return matches(pattern, ev) }

// matches reports whether a configured event names ev. A pattern with a '|'
// is system|code and matches Codings; one without matches an eventUri or
// eventCanonical exactly (a canonical's |version is ignored on both sides).
func matches(pattern string, ev envelope.Event) bool {
	switch ev.Kind {
	case envelope.EventCoding:
		system, code, ok := strings.Cut(pattern, "|")
		return ok && system == ev.System && code == ev.Code
	case envelope.EventURI:
		return pattern == ev.URI && !strings.Contains(pattern, "|")
	case envelope.EventCanonical:
		p, _, _ := strings.Cut(pattern, "|")
		u, _, _ := strings.Cut(ev.URI, "|")
		return p == u
	}
	return false
}
