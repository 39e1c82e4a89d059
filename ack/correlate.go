package ack

import (
	"strings"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/envelope"
)

// FocusKeys name what a request is about: each focus resource by reference
// (ref:Type/id), by absolute fullUrl (url:...) and by business identifier
// (id:system|value). A later message pointing at one of them (see
// ProgressKeys) belongs to the request's exchange.
func FocusKeys(m *envelope.Message) []string {
	var keys []string
	for _, ref := range m.Header.Focus {
		e, ok := m.Resolve(ref)
		if !ok {
			keys = append(keys, referenceKeys(envelope.Reference{Reference: ref})...)
			continue
		}
		if e.ID != "" && e.ResourceType != "" {
			keys = append(keys, "ref:"+e.ResourceType+"/"+e.ID)
		}
		// An absolute fullUrl names the resource outside the Bundle too; a
		// urn:uuid: one means nothing outside it.
		if strings.HasPrefix(e.FullURL, "http://") || strings.HasPrefix(e.FullURL, "https://") {
			keys = append(keys, "url:"+e.FullURL)
		}
		for _, id := range e.Identifiers {
			keys = append(keys, identifierKey(id))
		}
	}
	return dedupe(keys)
}

// ProgressKeys name what a message from a filler points at: the basedOn of
// its resources and a Task's focus, by reference and business identifier.
func ProgressKeys(m *envelope.Message) []string {
	var keys []string
	for _, e := range m.Entries[1:] {
		for _, r := range e.BasedOn {
			keys = append(keys, referenceKeys(r)...)
		}
		if e.Focus != nil {
			keys = append(keys, referenceKeys(*e.Focus)...)
		}
	}
	return dedupe(keys)
}

func referenceKeys(r envelope.Reference) []string {
	var keys []string
	if ref := r.Reference; ref != "" {
		if typ, id, absolute := envelope.SplitReference(ref); typ != "" {
			keys = append(keys, "ref:"+typ+"/"+id)
			if absolute {
				keys = append(keys, "url:"+ref)
			}
		}
	}
	if !r.Identifier.IsZero() {
		keys = append(keys, identifierKey(r.Identifier))
	}
	return keys
}

func identifierKey(id envelope.Identifier) string { return "id:" + id.System + "|" + id.Value }

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Progress reads the status a response or progress message reports: a Task
// in it gives its status and businessStatus; otherwise a result (a
// DiagnosticReport or Observation) in progress or final; otherwise the
// response code (ok accepts, fatal-error rejects). Empty: no change.
func Progress(m *envelope.Message) (status ledger.Status, business string) {
	for _, e := range m.Entries[1:] {
		if e.ResourceType == "Task" {
			if s := ledger.Status(e.Status); s.Known() {
				return s, e.BusinessStatus
			}
		}
	}
	for _, e := range m.Entries[1:] {
		if e.ResourceType != "DiagnosticReport" && e.ResourceType != "Observation" {
			continue
		}
		switch e.Status {
		case "registered", "preliminary", "partial":
			return "in-progress", "result " + e.Status
		case "final", "amended", "corrected", "appended":
			return "completed", "result " + e.Status
		}
	}
	if r := m.Header.Response; r != nil {
		switch r.Code {
		case envelope.ResponseOK:
			return "accepted", "response ok"
		case envelope.ResponseFatalError:
			return "rejected", "response fatal-error"
		case envelope.ResponseTransientError:
			return "", "response transient-error"
		}
	}
	return "", ""
}
