package envelope

// Severity is an OperationOutcome issue severity.
type Severity string

// Issue severities (http://hl7.org/fhir/issue-severity).
const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// IssueType is an OperationOutcome issue code (http://hl7.org/fhir/issue-type).
type IssueType string

// The issue codes the envelope emits.
const (
	IssueStructure     IssueType = "structure"
	IssueRequired      IssueType = "required"
	IssueValue         IssueType = "value"
	IssueInvariant     IssueType = "invariant"
	IssueCodeInvalid   IssueType = "code-invalid"
	IssueNotFound      IssueType = "not-found"
	IssueTooLong       IssueType = "too-long"
	IssueTooCostly     IssueType = "too-costly"
	IssueNotSupported  IssueType = "not-supported"
	IssueInformational IssueType = "informational"
	IssueInvalid       IssueType = "invalid"
	IssueIncomplete    IssueType = "incomplete"
)

// Issue is one finding about a message: what rule, how bad, where (a FHIRPath
// expression) and why. Issues become OperationOutcome.issue entries.
type Issue struct {
	Severity    Severity
	Code        IssueType
	Rule        Rule
	Diagnostics string
	// Expression is the FHIRPath of the offending element; empty when the
	// problem is below the FHIR level (malformed JSON).
	Expression string
}

// IsError reports whether the issue rejects the message.
func (i Issue) IsError() bool {
	return i.Severity == SeverityError || i.Severity == SeverityFatal
}
