package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// scanned is what one pass over the input yields: the Bundle members the
// envelope reads and a summary of every entry.
type scanned struct {
	bundle    *node // resourceType, type, id, identifier, timestamp, issues
	entryKind jsontext.Kind
	entries   []scannedEntry
}

type scannedEntry struct {
	kind        jsontext.Kind // the entry's own kind; '{' when well-formed
	fullURL     *node
	resource    *node // resourceType, id, meta; for entry 0 also the MessageHeader members
	hasRequest  bool
	hasResponse bool
}

// A memberFilter says whether an object member is captured, and returns its
// name as a constant so that capturing allocates no name.
type memberFilter func(name []byte) (string, bool)

// headerMember selects the members of the first entry's resource that the
// envelope reads. Everything else (narrative, extensions, sender...) is
// validated and skipped.
func headerMember(name []byte) (string, bool) {
	switch string(name) {
	case "eventCoding":
		return "eventCoding", true
	case "eventUri":
		return "eventUri", true
	case "eventCanonical":
		return "eventCanonical", true
	case "source":
		return "source", true
	case "destination":
		return "destination", true
	case "response":
		return "response", true
	case "focus":
		return "focus", true
	}
	return resourceMember(name)
}

// resourceMember selects the members read from every entry's resource:
// its identity, and what correlation reads (business identifiers, basedOn,
// a Task's focus, status and businessStatus).
func resourceMember(name []byte) (string, bool) {
	switch string(name) {
	case "resourceType":
		return "resourceType", true
	case "id":
		return "id", true
	case "meta":
		return "meta", true
	case "identifier":
		return "identifier", true
	case "basedOn":
		return "basedOn", true
	case "focus":
		return "focus", true
	case "status":
		return "status", true
	case "businessStatus":
		return "businessStatus", true
	}
	return "", false
}

// bundleMember selects the Bundle members read (entry is read separately).
func bundleMember(name []byte) (string, bool) {
	switch string(name) {
	case "type":
		return "type", true
	case "identifier":
		return "identifier", true
	case "timestamp":
		return "timestamp", true
	case "issues":
		return "issues", true
	}
	return resourceMember(name)
}

// scanner walks one JSON document with a jsontext.Decoder, which rejects
// invalid UTF-8 and duplicate member names, and enforces Limits on top.
type scanner struct {
	dec     *jsontext.Decoder
	buf     bytes.Buffer
	lim     Limits
	nameBuf []byte
}

func newScanner() *scanner {
	s := &scanner{}
	s.dec = jsontext.NewDecoder(&s.buf)
	return s
}

// scan reads raw, which must hold exactly one JSON object.
func (s *scanner) scan(raw []byte, lim Limits) (*scanned, error) {
	s.lim = lim
	// bytes.Buffer input lets the decoder parse raw in place, without a copy.
	s.buf = *bytes.NewBuffer(raw)
	s.dec.Reset(&s.buf)
	defer func() { s.buf = bytes.Buffer{} }()

	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, malformed("the body is empty: a FHIR message Bundle is a JSON object")
	}
	if k := s.dec.PeekKind(); k != '{' {
		if k == 0 {
			_, err := s.dec.ReadValue()
			return nil, s.jsonErr(err)
		}
		return nil, malformed("the top level is " + kindName(k) + ", not a JSON object")
	}
	out := &scanned{bundle: &node{kind: '{'}}
	err := s.object(1, func(name []byte, depth int) error {
		if string(name) == "entry" {
			out.entryKind = s.dec.PeekKind()
			if out.entryKind != '[' {
				return s.skip(depth)
			}
			return s.array(depth, func(i, depth int) error {
				e, err := s.entry(i, depth)
				out.entries = append(out.entries, e)
				return err
			})
		}
		key, ok := bundleMember(name)
		if !ok {
			return s.skip(depth)
		}
		v, err := s.capture(depth)
		if err != nil {
			return err
		}
		out.bundle.members = append(out.bundle.members, member{key, v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.dec.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, malformed("unexpected data after the top-level JSON object")
		}
		return nil, s.jsonErr(err)
	}
	return out, nil
}

func (s *scanner) entry(i, depth int) (scannedEntry, error) {
	e := scannedEntry{kind: s.dec.PeekKind()}
	if e.kind != '{' {
		return e, s.skip(depth)
	}
	err := s.object(depth, func(name []byte, depth int) error {
		switch string(name) {
		case "fullUrl":
			v, err := s.capture(depth)
			e.fullURL = v
			return err
		case "resource":
			want := resourceMember
			if i == 0 {
				want = headerMember
			}
			v, err := s.captureSome(depth, want)
			e.resource = v
			return err
		case "request":
			e.hasRequest = true
		case "response":
			e.hasResponse = true
		}
		return s.skip(depth)
	})
	return e, err
}

// object reads an object whose '{' is next, calling member for each name;
// member must consume the value.
func (s *scanner) object(depth int, member func(name []byte, depth int) error) error {
	if depth > s.lim.MaxDepth {
		return s.limit(IssueTooCostly, fmt.Sprintf("nesting deeper than %d levels at %s", s.lim.MaxDepth, s.pointer()))
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.jsonErr(err)
	}
	for s.dec.PeekKind() != '}' {
		raw, err := s.dec.ReadValue()
		if err != nil {
			return s.jsonErr(err)
		}
		if err := member(s.name(raw), depth+1); err != nil {
			return err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.jsonErr(err)
	}
	return nil
}

// array reads an array whose '[' is next, calling item for each element;
// item must consume the value.
func (s *scanner) array(depth int, item func(i, depth int) error) error {
	if depth > s.lim.MaxDepth {
		return s.limit(IssueTooCostly, fmt.Sprintf("nesting deeper than %d levels at %s", s.lim.MaxDepth, s.pointer()))
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.jsonErr(err)
	}
	for i := 0; s.dec.PeekKind() != ']'; i++ {
		if i >= s.lim.MaxArrayItems {
			return s.limit(IssueTooCostly, fmt.Sprintf("an array longer than %d items at %s", s.lim.MaxArrayItems, s.pointer()))
		}
		if err := item(i, depth+1); err != nil {
			return err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.jsonErr(err)
	}
	return nil
}

// scalar reads a string, number, boolean or null.
func (s *scanner) scalar() (jsontext.Value, error) {
	v, err := s.dec.ReadValue()
	if err != nil {
		return nil, s.jsonErr(err)
	}
	if len(v) > s.lim.MaxStringBytes {
		return nil, s.limit(IssueTooLong, fmt.Sprintf("a value longer than %d bytes at %s", s.lim.MaxStringBytes, s.pointer()))
	}
	return v, nil
}

// skip validates the next value against the limits without keeping it.
func (s *scanner) skip(depth int) error {
	switch s.dec.PeekKind() {
	case '{':
		return s.object(depth, func(_ []byte, depth int) error { return s.skip(depth) })
	case '[':
		return s.array(depth, func(_, depth int) error { return s.skip(depth) })
	}
	_, err := s.scalar()
	return err
}

// capture keeps the whole next value.
func (s *scanner) capture(depth int) (*node, error) {
	switch k := s.dec.PeekKind(); k {
	case '{':
		n := &node{kind: k}
		err := s.object(depth, func(name []byte, depth int) error {
			key := string(name)
			v, err := s.capture(depth)
			if err != nil {
				return err
			}
			n.members = append(n.members, member{key, v})
			return nil
		})
		return n, err
	case '[':
		n := &node{kind: k}
		err := s.array(depth, func(_, depth int) error {
			v, err := s.capture(depth)
			if err != nil {
				return err
			}
			n.items = append(n.items, v)
			return nil
		})
		return n, err
	}
	v, err := s.scalar()
	if err != nil {
		return nil, err
	}
	n := &node{kind: v.Kind()}
	switch n.kind {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			n.str = string(v[1 : len(v)-1])
			break
		}
		u, err := jsontext.AppendUnquote(nil, v)
		if err != nil {
			return nil, s.jsonErr(err)
		}
		n.str = string(u)
	case '0':
		n.str = string(v)
	}
	return n, nil
}

// captureSome keeps the members of the next object that want accepts and
// skips the rest. A value that is not an object is kept as its kind only.
func (s *scanner) captureSome(depth int, want memberFilter) (*node, error) {
	k := s.dec.PeekKind()
	if k != '{' {
		return &node{kind: k}, s.skip(depth)
	}
	n := &node{kind: k}
	err := s.object(depth, func(name []byte, depth int) error {
		key, ok := want(name)
		if !ok {
			return s.skip(depth)
		}
		v, err := s.capture(depth)
		if err != nil {
			return err
		}
		n.members = append(n.members, member{key, v})
		return nil
	})
	return n, err
}

// name returns the unescaped bytes of a member name read as a raw value. The
// result is valid until the next read.
func (s *scanner) name(raw jsontext.Value) []byte {
	if bytes.IndexByte(raw, '\\') < 0 && len(raw) >= 2 {
		return raw[1 : len(raw)-1]
	}
	u, err := jsontext.AppendUnquote(s.nameBuf[:0], raw)
	if err != nil {
		return nil // the decoder has already validated the name
	}
	s.nameBuf = u
	return u
}

func (s *scanner) pointer() string {
	p := string(s.dec.StackPointer())
	if p == "" {
		return "the top level"
	}
	return p
}

func (s *scanner) limit(code IssueType, diag string) error {
	return &Error{Kind: ErrLimit, Issues: []Issue{{
		Severity: SeverityError, Code: code, Rule: RuleLimit,
		Diagnostics: diag, Expression: "Bundle",
	}}}
}

func (s *scanner) jsonErr(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("the JSON ends before the top-level object is complete")
	}
	msg := strings.TrimPrefix(err.Error(), "jsontext: ")
	return malformed("the body is not valid JSON: " + msg)
}

func malformed(diag string) *Error {
	return &Error{Kind: ErrMalformed, Issues: []Issue{{
		Severity: SeverityError, Code: IssueStructure, Rule: RuleJSON, Diagnostics: diag,
	}}}
}
