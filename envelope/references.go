package envelope

import (
	"fmt"
	"strings"
)

// referenceRules: MessageHeader.focus and response.details point at entries of
// the Bundle. R5 says so with SHALL; R4 says the focus data "is always
// included in the bundle". A focus that has no reference (only an identifier
// or display) cannot be checked: an error in R5, a warning in R4.
func (c *check) referenceRules() {
	for i, f := range c.arr(c.header, headerPath, "focus", RuleFocus) {
		path := fmt.Sprintf("%s.focus[%d]", headerPath, i)
		if f.kind != '{' {
			c.errorf(IssueStructure, RuleFocus, path, "%s is %s, not a Reference", path, kindName(f.kind))
			continue
		}
		ref, ok := c.str(f, path, "reference", RuleFocus)
		if !ok {
			if !f.has("reference") {
				if c.version == R5 {
					c.errorf(IssueRequired, RuleFocus, path+".reference", "%s has no reference: the focus of an R5 message must be an entry of the Bundle", path)
				} else {
					c.warnf(IssueIncomplete, RuleFocus, path+".reference", "%s has no reference, so it cannot be checked against the Bundle entries", path)
				}
			}
			continue
		}
		c.msg.Header.Focus = append(c.msg.Header.Focus, ref)
		c.resolve(ref, path+".reference", RuleFocus)
	}
	if r := c.msg.Header.Response; r != nil && r.Details != "" {
		c.resolve(r.Details, headerPath+".response.details.reference", RuleResponseDetails)
	}
}

// resolve checks that ref names an entry of the Bundle and reports it under
// rule when it does not.
func (c *check) resolve(ref, expr string, rule Rule) {
	switch idx, byIDOnly := resolveReference(c.msg.Entries, ref); {
	case idx < 0:
		c.errorf(IssueNotFound, rule, expr, "the reference '%s' does not resolve to an entry of the Bundle", clip(ref))
	case byIDOnly:
		c.warnf(IssueValue, RuleReferenceFallback, expr,
			"the reference '%s' is not a valid FHIR reference; it was matched to Bundle.entry[%d] by its resource id", clip(ref), idx)
	}
}

// resolveReference finds the entry that ref points at, tolerantly:
//   - a reference equal to an entry's fullUrl (urn:uuid:, urn:oid:, absolute),
//     with or without a /_history/ version;
//   - a relative Type/id[/_history/v] to the entry of that type and id, or
//     whose fullUrl ends in /Type/id;
//   - an absolute base/Type/id to an entry of that type and id that has no
//     fullUrl of its own;
//   - last, a reference equal to an entry's resource id (byIDOnly): a
//     real-world deviation the caller reports as a warning.
//
// It returns -1 when nothing matches.
func resolveReference(entries []Entry, ref string) (idx int, byIDOnly bool) {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return -1, false
	}
	unversioned := ref
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		unversioned = ref[:i]
	}
	for i, e := range entries {
		if e.FullURL != "" && (e.FullURL == ref || e.FullURL == unversioned) {
			return i, false
		}
	}
	if strings.HasPrefix(ref, "urn:") {
		return -1, false
	}
	if typ, id, absolute := SplitReference(ref); typ != "" {
		tail := "/" + typ + "/" + id
		for i, e := range entries {
			sameResource := e.ResourceType == typ && e.ID == id
			switch {
			case !absolute && (sameResource || strings.HasSuffix(e.FullURL, tail)):
				return i, false
			case absolute && sameResource && e.FullURL == "":
				return i, false
			}
		}
	}
	for i, e := range entries {
		if e.ID != "" && e.ID == ref {
			return i, true
		}
	}
	return -1, false
}

// Resolve returns the entry a reference of this message points at, if any
// (see the focus rule for how references resolve).
func (m *Message) Resolve(ref string) (*Entry, bool) {
	i, _ := resolveReference(m.Entries, ref)
	if i < 0 {
		return nil, false
	}
	return &m.Entries[i], true
}

// SplitReference splits a literal reference into resource type and id,
// dropping a /_history/ version. typ is empty when ref is not of the form
// [base/]Type/id.
func SplitReference(ref string) (typ, id string, absolute bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	absolute = strings.Contains(ref, "://")
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return "", "", absolute
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	if !isResourceTypeName(typ) || id == "" {
		return "", "", absolute
	}
	if !absolute && len(parts) != 2 {
		return "", "", false
	}
	return typ, id, absolute
}

// isResourceTypeName reports whether s looks like a FHIR resource type: an
// upper-case ASCII letter followed by ASCII letters and digits.
func isResourceTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}
