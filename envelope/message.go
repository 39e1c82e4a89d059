package envelope

// Message is a validated FHIR message Bundle: its envelope fields and the
// original bytes, which are never re-serialized.
type Message struct {
	// Version is the FHIR release the message was validated as.
	Version Version
	// Raw is the input, byte for byte. It aliases the slice given to Parse.
	Raw []byte
	// BundleID is Bundle.id (R4: new on every send).
	BundleID string
	// BundleIdentifier is Bundle.identifier (R5: the message identity).
	BundleIdentifier Identifier
	// Timestamp is Bundle.timestamp as written.
	Timestamp string
	// Header is the first entry's MessageHeader.
	Header Header
	// Entries summarizes every entry, the MessageHeader first.
	Entries []Entry
	// Identity is who the message is: see Identity.
	Identity Identity
	// Issues are the non-fatal findings: warnings (fallbacks, tolerated
	// deviations) and information (how the version was chosen).
	Issues []Issue
}

// IsResponse reports whether the message answers another one: its
// MessageHeader has a response element.
func (m *Message) IsResponse() bool { return m.Header.Response != nil }

// Entry is one Bundle entry as the envelope sees it.
type Entry struct {
	FullURL      string
	ResourceType string
	ID           string
	VersionID    string // meta.versionId
	// Identifiers are the resource's business identifiers.
	Identifiers []Identifier
	// BasedOn are the resource's basedOn references; Focus is a Task's
	// focus (other resources' focus is not read).
	BasedOn []Reference
	Focus   *Reference
	// Status is the resource's status code; BusinessStatus a Task's
	// businessStatus (its text, or its first code).
	Status         string
	BusinessStatus string
}

// Reference is a FHIR Reference reduced to its literal reference and
// business identifier.
type Reference struct {
	Reference  string
	Identifier Identifier
}

// Identifier is a FHIR Identifier reduced to system and value.
type Identifier struct {
	System string
	Value  string
}

// IsZero reports whether the identifier has no value.
func (i Identifier) IsZero() bool { return i.Value == "" }

// String renders the identifier as system|value, or value alone.
func (i Identifier) String() string {
	if i.System == "" {
		return i.Value
	}
	return i.System + "|" + i.Value
}

// Header is the part of MessageHeader the gateway routes and answers by.
type Header struct {
	ID           string
	Event        Event
	Source       Endpoint
	Destinations []Endpoint
	Response     *Response
	// Focus holds the focus references as written.
	Focus []string
}

// Endpoint is a MessageHeader source or destination.
type Endpoint struct {
	Name string
	// URL is R4 endpoint or R5 endpointUrl.
	URL string
	// Reference is R5 endpointReference.reference.
	Reference string
	Software  string
	Version   string
}

// Response is MessageHeader.response.
type Response struct {
	// Identifier is the identity of the message answered: in R4 an id (Value
	// only), in R5 an Identifier.
	Identifier Identifier
	Code       ResponseCode
	// Details is the response.details reference as written.
	Details string
}

// ResponseCode is a MessageHeader.response.code.
type ResponseCode string

// Response codes (http://hl7.org/fhir/response-code, identical in R4 and R5).
const (
	ResponseOK             ResponseCode = "ok"
	ResponseTransientError ResponseCode = "transient-error"
	ResponseFatalError     ResponseCode = "fatal-error"
)

// Valid reports whether c is in the response-code value set.
func (c ResponseCode) Valid() bool {
	switch c {
	case ResponseOK, ResponseTransientError, ResponseFatalError:
		return true
	}
	return false
}

// EventKind is the type of MessageHeader.event[x].
type EventKind uint8

// Kinds of event[x]: R4 allows Coding and URI, R5 Coding and Canonical.
const (
	EventCoding EventKind = iota + 1
	EventURI
	EventCanonical
)

// Event is MessageHeader.event[x].
type Event struct {
	Kind EventKind
	// System, Code and Display are set for EventCoding.
	System  string
	Code    string
	Display string
	// URI is set for EventURI and EventCanonical.
	URI string
}

// Key is the routing key of the event: "coding:<system>|<code>",
// "uri:<eventUri>" or "canonical:<eventCanonical>". A Coding without a system
// gives "coding:|<code>".
func (e Event) Key() string {
	switch e.Kind {
	case EventCoding:
		return "coding:" + e.System + "|" + e.Code
	case EventURI:
		return "uri:" + e.URI
	case EventCanonical:
		return "canonical:" + e.URI
	}
	return ""
}

// String renders the event as it is written in route configuration:
// system|code for a Coding, the URI or canonical otherwise.
func (e Event) String() string {
	if e.Kind == EventCoding {
		return e.System + "|" + e.Code
	}
	return e.URI
}

// IdentitySource says which element a message identity was taken from.
type IdentitySource string

// Identity sources, in the order Parse tries them (see Identity).
const (
	FromHeaderID         IdentitySource = "MessageHeader.id"
	FromBundleID         IdentitySource = "Bundle.id"
	FromBundleIdentifier IdentitySource = "Bundle.identifier"
)

// Identity is who a message is, for duplicate detection and correlation.
//
// R4: MessageHeader.id; when absent, Bundle.id, then Bundle.identifier.value.
// R5: Bundle.identifier; when absent, MessageHeader.id, then Bundle.id. A
// fallback adds a warning issue; a message with none of them is rejected.
type Identity struct {
	Source IdentitySource
	// System is set only for an identity from Bundle.identifier.
	System string
	Value  string
}

// Key is the identity as one string: "system|value" or "value".
func (i Identity) Key() string { return Identifier{System: i.System, Value: i.Value}.String() }
