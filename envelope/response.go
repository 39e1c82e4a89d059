package envelope

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// Sender describes the gateway as the source of the messages it emits.
type Sender struct {
	Name     string
	Software string
	Version  string
	// Endpoint is the gateway's FHIR base URL, where answers to its messages go.
	Endpoint string
}

// Responder builds response messages for requests. Its clock and id source
// are fields so that tests get deterministic output; nil means time.Now and
// random UUIDs.
type Responder struct {
	Sender Sender
	Now    func() time.Time
	NewID  func() string
}

// ErrNotRespondable: a response cannot be built for this message.
var ErrNotRespondable = errors.New("cannot build a response")

// Response builds a response message of req's version: a new identity
// (R4 Bundle.id and MessageHeader.id, R5 also Bundle.identifier), the same
// event, response.identifier quoting req's identity with the version's type,
// code, the optional details OperationOutcome as an entry referenced from
// response.details, and destination = req's source.
func (r Responder) Response(req *Message, code ResponseCode, details *OperationOutcome) ([]byte, error) {
	if req == nil || req.Identity.Value == "" || req.Header.Event.Kind == 0 {
		return nil, ErrNotRespondable
	}
	if req.Version == R4 && r.Sender.Endpoint == "" {
		return nil, errors.Join(ErrNotRespondable, errors.New("an R4 response needs the gateway's source endpoint"))
	}
	if !code.Valid() {
		return nil, errors.Join(ErrNotRespondable, errors.New("invalid response code "+string(code)))
	}
	now, newID := r.Now, r.NewID
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = uuid.NewString
	}
	r5 := req.Version == R5
	bundleID, headerID := newID(), newID()

	h := headerJSON{ResourceType: "MessageHeader", ID: headerID}
	switch ev := req.Header.Event; ev.Kind {
	case EventCoding:
		h.EventCoding = &Coding{System: ev.System, Code: ev.Code, Display: ev.Display}
	case EventURI:
		h.EventURI = ev.URI
	case EventCanonical:
		h.EventCanonical = ev.URI
	}
	src := req.Header.Source
	dst := endpointJSON{Name: src.Name}
	me := endpointJSON{Name: r.Sender.Name, Software: r.Sender.Software, Version: r.Sender.Version}
	if r5 {
		dst.EndpointURL = src.URL
		if src.Reference != "" {
			dst.EndpointReference = &referenceJSON{Reference: src.Reference}
		}
		me.EndpointURL = r.Sender.Endpoint
	} else {
		dst.Endpoint = src.URL
		me.Endpoint = r.Sender.Endpoint
	}
	if dst != (endpointJSON{}) {
		h.Destination = []endpointJSON{dst}
	}
	h.Source = me
	h.Response.Code = code
	if r5 {
		h.Response.Identifier = identifierJSON{System: req.Identity.System, Value: req.Identity.Value}
	} else {
		h.Response.Identifier = req.Identity.Value
	}

	b := bundleJSON{
		ResourceType: "Bundle",
		ID:           bundleID,
		Type:         "message",
		Timestamp:    now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Entry:        []entryJSON{{FullURL: "urn:uuid:" + headerID, Resource: &h}},
	}
	if r5 {
		b.Identifier = &identifierJSON{System: "urn:ietf:rfc:3986", Value: "urn:uuid:" + bundleID}
	}
	if details != nil {
		oo := *details
		oo.ID = newID()
		h.Response.Details = &referenceJSON{Reference: "urn:uuid:" + oo.ID}
		b.Entry = append(b.Entry, entryJSON{FullURL: "urn:uuid:" + oo.ID, Resource: oo})
	}
	return Encode(b), nil
}

type bundleJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Identifier   *identifierJSON `json:"identifier,omitempty"`
	Type         string          `json:"type"`
	Timestamp    string          `json:"timestamp"`
	Entry        []entryJSON     `json:"entry"`
}

type entryJSON struct {
	FullURL  string `json:"fullUrl"`
	Resource any    `json:"resource"`
}

type identifierJSON struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type referenceJSON struct {
	Reference string `json:"reference"`
}

type headerJSON struct {
	ResourceType   string         `json:"resourceType"`
	ID             string         `json:"id"`
	EventCoding    *Coding        `json:"eventCoding,omitempty"`
	EventURI       string         `json:"eventUri,omitempty"`
	EventCanonical string         `json:"eventCanonical,omitempty"`
	Destination    []endpointJSON `json:"destination,omitempty"`
	Source         endpointJSON   `json:"source"`
	Response       responseJSON   `json:"response"`
}

type endpointJSON struct {
	Name              string         `json:"name,omitempty"`
	Software          string         `json:"software,omitempty"`
	Version           string         `json:"version,omitempty"`
	Endpoint          string         `json:"endpoint,omitempty"`
	EndpointURL       string         `json:"endpointUrl,omitempty"`
	EndpointReference *referenceJSON `json:"endpointReference,omitempty"`
}

type responseJSON struct {
	Identifier any            `json:"identifier"` // an id (R4) or an identifierJSON (R5)
	Code       ResponseCode   `json:"code"`
	Details    *referenceJSON `json:"details,omitempty"`
}
