package envelope

import "github.com/go-json-experiment/json/jsontext"

// node is a captured JSON value: only the parts of the input the envelope
// reads are captured, everything else is validated and skipped.
type node struct {
	kind    jsontext.Kind // '{', '[', '"', '0', 't', 'f' or 'n'
	str     string        // an unescaped string, or a number's literal
	members []member      // object members, in input order
	items   []*node       // array items
}

type member struct {
	name  string
	value *node
}

// get returns the member called name, or nil when n is nil, not an object or
// has no such member.
func (n *node) get(name string) *node {
	if n == nil || n.kind != '{' {
		return nil
	}
	for i := range n.members {
		if n.members[i].name == name {
			return n.members[i].value
		}
	}
	return nil
}

// has reports whether the object n has a member called name.
func (n *node) has(name string) bool { return n.get(name) != nil }

// kindName names a JSON kind for diagnostics.
func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "nothing"
}
