package envelope

import (
	"bytes"
	"encoding/json"
)

// OperationOutcome is the FHIR resource the gateway answers errors and
// acknowledgements with. Its JSON is the same in R4 and R5.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id,omitempty"`
	Extension    []Extension    `json:"extension,omitempty"`
	Issue        []OutcomeIssue `json:"issue"`
}

// Extension is a FHIR extension with a string value, for what the gateway
// adds to its own resources (such as the file an outcome is about).
type Extension struct {
	URL         string `json:"url"`
	ValueString string `json:"valueString,omitempty"`
}

// OutcomeIssue is one OperationOutcome.issue.
type OutcomeIssue struct {
	Severity    Severity         `json:"severity"`
	Code        IssueType        `json:"code"`
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
	Expression  []string         `json:"expression,omitempty"`
}

// CodeableConcept is the subset of the FHIR datatype the gateway emits.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// NewOutcome renders issues as an OperationOutcome. Each issue's rule goes to
// issue.details.coding (system RuleSystem). With no issues it holds a single
// informational "ok" issue, since FHIR requires at least one.
func NewOutcome(issues ...Issue) OperationOutcome {
	oo := OperationOutcome{ResourceType: "OperationOutcome", Issue: make([]OutcomeIssue, 0, len(issues))}
	for _, is := range issues {
		oi := OutcomeIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if is.Rule != "" {
			oi.Details = &CodeableConcept{Coding: []Coding{{System: RuleSystem, Code: string(is.Rule)}}}
		}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
		}
		oo.Issue = append(oo.Issue, oi)
	}
	if len(oo.Issue) == 0 {
		oo.Issue = append(oo.Issue, OutcomeIssue{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: "ok"})
	}
	return oo
}

// JSON encodes the outcome compactly, without HTML escaping.
func (o OperationOutcome) JSON() []byte { return Encode(o) }

// Encode marshals a resource built from plain Go types (strings, numbers,
// slices, structs) compactly and without HTML escaping. Such values cannot
// fail to encode; one that does is a programming error and panics.
func Encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("envelope: encoding a resource: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Information is an OperationOutcome with one information issue saying
// diagnostics, as JSON.
func Information(diagnostics string) []byte {
	return NewOutcome(Issue{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: diagnostics}).JSON()
}
