package replay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// Freshener gives messages new identities, so that fixtures can be replayed
// again without meeting the gateway's duplicate detection: R4
// MessageHeader.id and Bundle.id, R5 Bundle.identifier (and its Bundle.id and
// MessageHeader.id). One Freshener maps each old value to one new value for
// a whole run, so what the fixtures say about each other still holds:
//   - references inside a Bundle to its MessageHeader (its fullUrl,
//     MessageHeader/<id>) or to the Bundle follow the new ids;
//   - a response's response.identifier that quotes a message freshened
//     earlier in the run quotes its new identity;
//   - two fixtures that share an identity (a resend) still share it, so a
//     duplicate stays a duplicate.
//
// Only valid messages are rewritten; anything the envelope rejects is sent
// byte for byte, so an invalid fixture stays invalid in the same way.
// Everything but the rewritten strings is kept byte for byte.
type Freshener struct {
	parser *envelope.Parser
	newID  func() string
	mu     sync.Mutex
	ids    map[string]string // old id, Bundle.id or identifier value -> new
}

// NewFreshener returns a Freshener that makes new ids with newID (nil:
// random UUIDs).
func NewFreshener(newID func() string) *Freshener {
	if newID == nil {
		newID = uuid.NewString
	}
	return &Freshener{parser: envelope.NewParser(envelope.Options{}), newID: newID, ids: map[string]string{}}
}

// Freshen returns body with fresh identities, or body itself when it is not
// a valid message.
func (f *Freshener) Freshen(body []byte) []byte {
	msg, err := f.parser.Parse(body, envelope.VersionAuto)
	if err != nil {
		return body
	}
	return f.freshen(msg)
}

// freshen is Freshen of a message already parsed.
func (f *Freshener) freshen(msg *envelope.Message) []byte {
	body := msg.Raw
	f.mu.Lock()
	defer f.mu.Unlock()
	r := rewrite{ids: map[string]string{}, refs: map[string]string{}}
	h := msg.Header
	if msg.BundleID != "" {
		r.ids["/id"] = f.fresh(msg.BundleID, "")
		r.refs["Bundle/"+msg.BundleID] = "Bundle/" + r.ids["/id"]
	}
	if h.ID != "" {
		r.ids["/entry/0/resource/id"] = f.fresh(h.ID, "")
		r.refs["MessageHeader/"+h.ID] = "MessageHeader/" + r.ids["/entry/0/resource/id"]
		if full := msg.Entries[0].FullURL; full != "" && strings.HasSuffix(full, h.ID) {
			r.ids["/entry/0/fullUrl"] = strings.TrimSuffix(full, h.ID) + r.ids["/entry/0/resource/id"]
			r.refs[full] = r.ids["/entry/0/fullUrl"]
		}
	}
	if v := msg.BundleIdentifier.Value; v != "" {
		r.ids["/identifier/value"] = f.fresh(v, prefixOf(v))
	}
	if h.Response != nil {
		quoted := h.Response.Identifier.Value
		if n, ok := f.ids[quoted]; ok {
			r.ids["/entry/0/resource/response/identifier"] = n // R4: an id
			r.ids["/entry/0/resource/response/identifier/value"] = n
		}
	}
	out, err := r.apply(body)
	if err != nil {
		return body
	}
	return out
}

// fresh is old's new value, made once per run; prefix keeps a URI scheme
// such as urn:uuid: on identifier values.
func (f *Freshener) fresh(old, prefix string) string {
	if n, ok := f.ids[old]; ok {
		return n
	}
	n := prefix + f.newID()
	f.ids[old] = n
	return n
}

// prefixOf keeps the urn:uuid: or urn:oid: style prefix of an identifier
// value, so the new value is the same kind of identifier.
func prefixOf(v string) string {
	if strings.HasPrefix(v, "urn:uuid:") {
		return "urn:uuid:"
	}
	return ""
}

// rewrite replaces string values in a JSON document: those at the JSON
// pointers in ids, and "reference" values found in refs.
type rewrite struct {
	ids  map[string]string // JSON pointer -> new value
	refs map[string]string // old reference -> new reference
}

// apply rewrites body, splicing new strings over old ones and leaving every
// other byte as it was.
func (r rewrite) apply(body []byte) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	var out bytes.Buffer
	copied := int64(0)
	for {
		before := dec.InputOffset()
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if tok.Kind() != '"' {
			continue
		}
		if k, n := dec.StackIndex(dec.StackDepth()); k == '{' && n%2 == 1 {
			continue // an object member's name
		}
		ptr := string(dec.StackPointer())
		repl, ok := r.ids[ptr]
		if !ok && strings.HasSuffix(ptr, "/reference") {
			repl, ok = r.refs[tok.String()]
		}
		if !ok {
			continue
		}
		end := dec.InputOffset()
		start := before + int64(bytes.IndexByte(body[before:end], '"'))
		out.Write(body[copied:start])
		quoted, err := jsontext.AppendQuote(nil, repl)
		if err != nil {
			return nil, err
		}
		out.Write(quoted)
		copied = end
	}
	out.Write(body[copied:])
	return out.Bytes(), nil
}
