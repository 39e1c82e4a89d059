package adapters

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Spec is a filler's configuration as the adapter kinds read it.
type Spec struct {
	URL     string
	Async   bool
	Headers map[string]string
	Timeout time.Duration
}

// Kind is one kind of filler: how its configuration is checked, whether the
// gateway drives its deliveries, and how its adapter is built.
type Kind struct {
	// Name is the value of fillers[].adapter.
	Name string
	// NeedsURL: the kind delivers to fillers[].url, which must be absolute.
	NeedsURL bool
	// New builds the adapter the gateway's worker delivers with; nil for a
	// kind whose filler consumes its queue itself (the gateway does not
	// drive its deliveries, and cannot hold a message back once routed).
	New func(Spec) (Adapter, error)
}

// Driven reports whether the gateway delivers this kind's messages itself.
func (k Kind) Driven() bool { return k.New != nil }

// Check reports what is wrong with a filler of this kind configured as s.
func (k Kind) Check(s Spec) error {
	if !k.NeedsURL {
		return nil
	}
	if u, err := url.Parse(s.URL); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("adapter %s needs an absolute url", k.Name)
	}
	if err := checkHeaders(s.Headers); err != nil {
		return fmt.Errorf("adapter %s: %w", k.Name, err)
	}
	return nil
}

// kinds is the one table of filler kinds.
var kinds = map[string]Kind{
	"http": {Name: "http", NeedsURL: true, New: func(s Spec) (Adapter, error) {
		return NewHTTP(HTTPConfig{URL: s.URL, Async: s.Async, Headers: s.Headers, Timeout: s.Timeout})
	}},
	"rest": {Name: "rest", NeedsURL: true, New: func(s Spec) (Adapter, error) {
		return NewREST(RESTConfig{URL: s.URL, Headers: s.Headers, Timeout: s.Timeout})
	}},
	"amqp": {Name: "amqp"},
}

// KindOf returns the kind named by fillers[].adapter.
func KindOf(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// KindNames lists the kinds, for error messages.
func KindNames() string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
