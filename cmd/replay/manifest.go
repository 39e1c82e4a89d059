package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Manifest is a replay manifest: the messages to send, in order, and what
// each should get. Written as YAML:
//
//	root: fixtures          # where files are, relative to the manifest (default: its directory)
//	defaults:               # apply to every message that does not say otherwise
//	  within: 10s           # time limit for the asynchronous expectations
//	messages:
//	  - file: r4/lab-order.json
//	    status: 200         # the immediate answer's HTTP status (over AMQP: header fhirgw-status)
//	    response: ok        # the filler's response code: ok, transient-error or fatal-error
//	    task: completed     # the Task status reached within the time limit
//	    fillers: [lab]      # the fillers the message was routed to (or filler: lab)
//	  - file: r4/lab-order-ack.json
//	    after: [r4/lab-order.json]  # sent only once these have finished (matters with --concurrency)
//	    status: 200
//	  - file: invalid/no-event.json
//	    status: 400
//	    issue: required     # an OperationOutcome issue code the answer must carry
//	  - name: resend        # a name tells apart two sends of one file
//	    file: r4/lab-order.json
//	    duplicate: true     # answered as a duplicate (the Fhirgw-Duplicate mark)
//
// A message without expectations is sent and reported, never failed.
// Unknown keys are an error, so a misspelt expectation is never ignored.
type Manifest struct {
	Root     string   `yaml:"root"`
	Defaults Defaults `yaml:"defaults"`
	Messages []Entry  `yaml:"messages"`
	// dir is the manifest's directory: Root is relative to it.
	dir string
}

// Defaults are what a manifest's messages get unless they say otherwise.
type Defaults struct {
	FHIRVersion string   `yaml:"fhirVersion"`
	Async       *bool    `yaml:"async"`
	Within      Duration `yaml:"within"`
}

// Entry is one message of a manifest.
type Entry struct {
	// File is the message Bundle, relative to the manifest's root.
	File string `yaml:"file"`
	// Name identifies the entry in reports and in After (default: File).
	Name string `yaml:"name"`
	// After names entries that must finish before this one is sent.
	After []string `yaml:"after"`
	// FHIRVersion is the content type's fhirVersion ("4.0" or "5.0");
	// empty: detected from the message, else the gateway's default.
	FHIRVersion string `yaml:"fhirVersion"`
	// Async posts with ?async=true (HTTP; AMQP is always asynchronous).
	Async *bool `yaml:"async"`
	// Within is how long the asynchronous expectations may take.
	Within Duration `yaml:"within"`
	Expect `yaml:",inline"`
}

// Expect is what a message should get. Zero fields are not checked.
type Expect struct {
	// Status is the HTTP status of the immediate answer.
	Status int `yaml:"status,omitempty" json:"status,omitempty"`
	// Issue is an OperationOutcome issue code the answer carries.
	Issue string `yaml:"issue,omitempty" json:"issue,omitempty"`
	// Duplicate, when set, says whether the answer is marked a duplicate.
	Duplicate *bool `yaml:"duplicate,omitempty" json:"duplicate,omitempty"`
	// Response is the filler's response code (ok, transient-error,
	// fatal-error) as the Task or the reply queue reports it.
	Response string `yaml:"response,omitempty" json:"response,omitempty"`
	// Task is the Task status reached within the time limit.
	Task string `yaml:"task,omitempty" json:"task,omitempty"`
	// Filler and Fillers name the fillers the message was routed to.
	Filler  string   `yaml:"filler,omitempty" json:"-"`
	Fillers []string `yaml:"fillers,omitempty" json:"fillers,omitempty"`
}

// IsZero reports whether nothing is expected.
func (e Expect) IsZero() bool {
	return e.Status == 0 && e.Issue == "" && e.Duplicate == nil && e.Response == "" && e.Task == "" && e.Filler == "" && len(e.Fillers) == 0
}

// follows reports whether checking e needs the answers that come after the
// immediate one.
func (e Expect) follows() bool { return e.Response != "" || e.Task != "" || len(e.Fillers) > 0 }

// Duration is a time.Duration written as in Go ("10s", "1m30s").
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// DefaultWithin is how long asynchronous expectations may take when the
// manifest does not say.
const DefaultWithin = 10 * time.Second

// responseCodes and taskStatuses are the values expectations may name.
var (
	responseCodes = []string{"ok", "transient-error", "fatal-error"}
	taskStatuses  = []string{"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
		"in-progress", "on-hold", "failed", "completed", "entered-in-error"}
)

// LoadManifest reads and checks a manifest file.
func LoadManifest(path string) (*Manifest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	if len(m.Messages) == 0 {
		return nil, fmt.Errorf("manifest %s lists no messages", path)
	}
	return &m, nil
}

// Plan resolves the manifest into the messages to send. root, when set,
// replaces the manifest's root; only, when set, keeps the entries whose
// files lie under one of these paths (and what they must wait for).
func (m *Manifest) Plan(root string, only ...string) (Plan, error) {
	if root == "" {
		root = filepath.Join(m.dir, m.Root)
	}
	var plan Plan
	index := map[string]int{}
	for i, e := range m.Messages {
		it, err := m.item(root, e)
		if err != nil {
			return nil, fmt.Errorf("manifest message %d (%s): %w", i+1, firstSet(e.Name, e.File), err)
		}
		if _, dup := index[it.Name]; dup {
			return nil, fmt.Errorf("manifest message %d: two messages are named %s; give one a name", i+1, it.Name)
		}
		for _, a := range e.After {
			j, ok := index[a]
			if !ok {
				return nil, fmt.Errorf("manifest message %d (%s): after %s, which is not an earlier message", i+1, it.Name, a)
			}
			it.After = append(it.After, j)
		}
		index[it.Name] = i
		plan = append(plan, it)
	}
	if len(only) > 0 {
		return plan.under(only)
	}
	return plan, nil
}

// item resolves one entry, defaults applied.
func (m *Manifest) item(root string, e Entry) (Item, error) {
	if e.File == "" {
		return Item{}, errors.New("no file")
	}
	d := m.Defaults
	it := Item{Name: firstSet(e.Name, e.File), File: filepath.Join(root, filepath.FromSlash(e.File)),
		FHIRVersion: firstSet(e.FHIRVersion, d.FHIRVersion), Within: time.Duration(firstSet(e.Within, d.Within, Duration(DefaultWithin))), Expect: e.Expect}
	if a := firstSet(e.Async, d.Async); a != nil {
		it.Async = *a
	}
	if it.Expect.Filler != "" {
		it.Expect.Fillers = append([]string{it.Expect.Filler}, it.Expect.Fillers...)
		it.Expect.Filler = ""
	}
	switch {
	case it.Expect.Status != 0 && (it.Expect.Status < 100 || it.Expect.Status > 599):
		return Item{}, fmt.Errorf("status %d is no HTTP status", it.Expect.Status)
	case it.Expect.Response != "" && !slices.Contains(responseCodes, it.Expect.Response):
		return Item{}, fmt.Errorf("response %q is none of %s", it.Expect.Response, strings.Join(responseCodes, ", "))
	case it.Expect.Task != "" && !slices.Contains(taskStatuses, it.Expect.Task):
		return Item{}, fmt.Errorf("task %q is no Task status (%s)", it.Expect.Task, strings.Join(taskStatuses, ", "))
	case it.FHIRVersion != "" && it.FHIRVersion != "4.0" && it.FHIRVersion != "5.0":
		return Item{}, fmt.Errorf("fhirVersion %q: use 4.0 or 5.0", it.FHIRVersion)
	}
	if _, err := os.Stat(it.File); err != nil {
		return Item{}, err
	}
	return it, nil
}

// firstSet returns the first of vs that is not the zero value.
func firstSet[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}
