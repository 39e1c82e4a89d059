package envelope

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

const headerPath = "Bundle.entry[0].resource"

// bundleShape checks that the input is a Bundle of type message whose first
// entry is a MessageHeader. It returns the error kind when it is not, after
// which no other rule can say anything useful.
func (c *check) bundleShape() error {
	b := c.sc.bundle
	rt := b.get("resourceType")
	switch {
	case rt == nil:
		c.errorf(IssueRequired, RuleResourceType, "resourceType",
			"resourceType is missing: a FHIR message is a Bundle of type message")
		return ErrNotMessage
	case rt.kind != '"':
		c.errorf(IssueStructure, RuleResourceType, "resourceType", "resourceType is %s, not a string", kindName(rt.kind))
		return ErrNotMessage
	case rt.str != "Bundle":
		c.errorf(IssueInvalid, RuleResourceType, "resourceType",
			"resourceType is '%s', not 'Bundle': only message Bundles can be processed", clip(rt.str))
		return ErrNotMessage
	}

	bt := b.get("type")
	switch {
	case bt == nil:
		c.errorf(IssueRequired, RuleBundleType, "Bundle.type", "Bundle.type is missing: a message Bundle has type 'message'")
		return ErrInvalid
	case bt.kind != '"':
		c.errorf(IssueStructure, RuleBundleType, "Bundle.type", "Bundle.type is %s, not a string", kindName(bt.kind))
		return ErrInvalid
	case bt.str != "message":
		c.errorf(IssueInvalid, RuleBundleType, "Bundle.type",
			"Bundle.type is '%s', not 'message': only message Bundles can be processed", clip(bt.str))
		return ErrNotMessage
	}

	switch {
	case c.sc.entryKind == 0 || (c.sc.entryKind == '[' && len(c.sc.entries) == 0):
		c.errorf(IssueInvariant, RuleFirstEntry, "Bundle.entry",
			"the Bundle has no entries: the first entry of a message must be a MessageHeader (bdl-12)")
		return ErrInvalid
	case c.sc.entryKind != '[':
		c.errorf(IssueStructure, RuleFirstEntry, "Bundle.entry", "Bundle.entry is %s, not an array", kindName(c.sc.entryKind))
		return ErrInvalid
	}
	first := c.sc.entries[0]
	res := first.resource
	switch {
	case first.kind != '{':
		c.errorf(IssueStructure, RuleFirstEntry, "Bundle.entry[0]", "Bundle.entry[0] is %s, not an object", kindName(first.kind))
		return ErrInvalid
	case res == nil || res.kind != '{':
		c.errorf(IssueInvariant, RuleFirstEntry, headerPath,
			"the first entry has no resource: it must be a MessageHeader (bdl-12)")
		return ErrInvalid
	}
	if rt := res.get("resourceType"); rt == nil || rt.kind != '"' || rt.str != "MessageHeader" {
		got := "a resource without a resourceType"
		if rt != nil && rt.kind == '"' {
			got = "a " + clip(rt.str) + " resource"
		}
		c.errorf(IssueInvariant, RuleFirstEntry, headerPath,
			"the first entry is %s: the first entry of a message must be a MessageHeader (bdl-12)", got)
		return ErrInvalid
	}
	c.header = res
	return nil
}

// messageRules run, in order, on a Bundle that passed bundleShape. Each adds
// its own issues; all of them run so that one answer lists every problem.
var messageRules = []func(*check){
	(*check).bundleFields,
	(*check).entryRules,
	(*check).fullURLRules,
	(*check).eventRule,
	(*check).sourceRule,
	(*check).destinationRule,
	(*check).responseRule,
	(*check).referenceRules,
	(*check).identityRule,
}

// bundleFields reads Bundle.id, Bundle.identifier and Bundle.timestamp.
func (c *check) bundleFields() {
	b := c.sc.bundle
	c.msg.BundleID, _ = c.str(b, "Bundle", "id", RuleIdentity)
	c.msg.Timestamp, _ = c.str(b, "Bundle", "timestamp", RuleBundleType)
	if id := c.obj(b, "Bundle", "identifier", RuleIdentity); id != nil {
		c.msg.BundleIdentifier.System, _ = c.str(id, "Bundle.identifier", "system", RuleIdentity)
		c.msg.BundleIdentifier.Value, _ = c.str(id, "Bundle.identifier", "value", RuleIdentity)
	}
	if b.has("issues") && c.version == R4 {
		c.warnf(IssueStructure, RuleVersion, "Bundle.issues", "Bundle.issues is an R5 element; an R4 Bundle has none")
	}
}

// entryRules: every entry is an object carrying a resource with a
// resourceType, and no request or response (R4 bdl-3/bdl-4, R5 bdl-3a).
func (c *check) entryRules() {
	c.msg.Entries = make([]Entry, len(c.sc.entries))
	for i, e := range c.sc.entries {
		// Paths are built only for issues: this loop runs for every entry.
		path := func(suffix string) string { return "Bundle.entry[" + strconv.Itoa(i) + "]" + suffix }
		if e.kind != '{' {
			c.errorf(IssueStructure, RuleEntryResource, path(""), "%s is %s, not an object", path(""), kindName(e.kind))
			continue
		}
		if e.hasRequest {
			rule, why := RuleEntryRequestR4, "entry.request is only allowed in batch, transaction and history Bundles (bdl-3)"
			if c.version == R5 {
				rule, why = RuleEntryRequestR5, "message entries must not have request or response (bdl-3a)"
			}
			c.errorf(IssueInvariant, rule, path(".request"), "%s is present: %s", path(".request"), why)
		}
		if e.hasResponse {
			rule, why := RuleEntryResponseR4, "entry.response is only allowed in response and history Bundles (bdl-4)"
			if c.version == R5 {
				rule, why = RuleEntryRequestR5, "message entries must not have request or response (bdl-3a)"
			}
			c.errorf(IssueInvariant, rule, path(".response"), "%s is present: %s", path(".response"), why)
		}
		ent := &c.msg.Entries[i]
		if u := e.fullURL; u != nil {
			var ok bool
			if ent.FullURL, ok = c.value(u, RuleFullURLPresent, path, ".fullUrl"); !ok {
				if c.badFullURL == nil {
					c.badFullURL = map[int]bool{}
				}
				c.badFullURL[i] = true
			}
		}
		res := e.resource
		switch {
		case res == nil:
			c.errorf(IssueRequired, RuleEntryResource, path(".resource"), "%s is missing: every entry of a message carries a resource", path(".resource"))
			continue
		case res.kind != '{':
			c.errorf(IssueStructure, RuleEntryResource, path(".resource"), "%s is %s, not an object", path(".resource"), kindName(res.kind))
			continue
		}
		rt := res.get("resourceType")
		if rt == nil {
			c.errorf(IssueRequired, RuleEntryResource, path(".resource.resourceType"), "%s has no resourceType", path(".resource"))
			continue
		}
		if ent.ResourceType, _ = c.value(rt, RuleEntryResource, path, ".resource.resourceType"); ent.ResourceType == "" {
			continue
		}
		if id := res.get("id"); id != nil {
			ent.ID, _ = c.value(id, RuleEntryResource, path, ".resource.id")
		}
		if meta := res.get("meta"); meta != nil {
			if v := meta.get("versionId"); v != nil {
				ent.VersionID, _ = c.value(v, RuleEntryResource, path, ".resource.meta.versionId")
			}
		}
		if i > 0 {
			readCorrelation(ent, res)
		}
	}
}

// readCorrelation reads what correlation needs of a resource. It is
// lenient: shapes it does not expect are skipped, not reported, since they
// are the resource's business and not the envelope's.
func readCorrelation(ent *Entry, res *node) {
	for _, id := range listOf(res.get("identifier")) {
		if v := identifierOf(id); !v.IsZero() {
			ent.Identifiers = append(ent.Identifiers, v)
		}
	}
	for _, ref := range listOf(res.get("basedOn")) {
		if r, ok := referenceOf(ref); ok {
			ent.BasedOn = append(ent.BasedOn, r)
		}
	}
	if ent.ResourceType == "Task" {
		if r, ok := referenceOf(res.get("focus")); ok {
			ent.Focus = &r
		}
		if bs := res.get("businessStatus"); bs != nil {
			ent.BusinessStatus = stringOf(bs.get("text"))
			if ent.BusinessStatus == "" {
				for _, c := range listOf(bs.get("coding")) {
					if ent.BusinessStatus = stringOf(c.get("code")); ent.BusinessStatus != "" {
						break
					}
				}
			}
		}
	}
	ent.Status = stringOf(res.get("status"))
}

// listOf is the items of an array, or the node itself for a single value.
func listOf(n *node) []*node {
	switch {
	case n == nil:
		return nil
	case n.kind == '[':
		return n.items
	}
	return []*node{n}
}

func stringOf(n *node) string {
	if n == nil || n.kind != '"' {
		return ""
	}
	return n.str
}

func identifierOf(n *node) Identifier {
	return Identifier{System: stringOf(n.get("system")), Value: stringOf(n.get("value"))}
}

func referenceOf(n *node) (Reference, bool) {
	if n == nil || n.kind != '{' {
		return Reference{}, false
	}
	r := Reference{Reference: stringOf(n.get("reference")), Identifier: identifierOf(n.get("identifier"))}
	return r, r.Reference != "" || !r.Identifier.IsZero()
}

// value reads a captured string v within the field limit; a non-string or an
// over-long value is an issue at path(suffix).
func (c *check) value(v *node, rule Rule, path func(string) string, suffix string) (string, bool) {
	if v.kind != '"' {
		c.errorf(IssueStructure, rule, path(suffix), "%s is %s, not a string", path(suffix), kindName(v.kind))
		return "", false
	}
	if len(v.str) > c.lim.MaxFieldBytes {
		c.errorf(IssueTooLong, RuleLimit, path(suffix), "%s is %d bytes, over the limit of %d", path(suffix), len(v.str), c.lim.MaxFieldBytes)
		return "", false
	}
	return v.str, true
}

// fullURLRules: R5 requires a fullUrl on every entry (bdl-15; R4 only says
// SHALL in prose, so a warning); no fullUrl is version specific (bdl-8); and
// fullUrls are unique unless meta.versionId differs (bdl-7).
func (c *check) fullURLRules() {
	seen := make(map[string]int, len(c.msg.Entries))
	for i, e := range c.msg.Entries {
		if c.sc.entries[i].kind != '{' || c.badFullURL[i] {
			continue // not an entry, or a fullUrl already reported as malformed
		}
		path := func() string { return "Bundle.entry[" + strconv.Itoa(i) + "].fullUrl" }
		if e.FullURL == "" {
			if c.version == R5 {
				c.errorf(IssueInvariant, RuleFullURLPresent, path(), "%s is missing: every entry of an R5 message has a fullUrl (bdl-15)", path())
			} else {
				c.warnf(IssueRequired, RuleFullURLPresent, path(), "%s is missing: references to this entry can only resolve by resource type and id", path())
			}
			continue
		}
		if strings.Contains(e.FullURL, "/_history/") {
			c.errorf(IssueInvariant, RuleFullURLHistory, path(), "%s is a version-specific reference; fullUrl cannot contain /_history/ (bdl-8)", path())
		}
		if j, dup := seen[e.FullURL]; dup && c.msg.Entries[j].VersionID == e.VersionID {
			c.errorf(IssueInvariant, RuleFullURLUnique, path(),
				"%s repeats the fullUrl of Bundle.entry[%d]: fullUrls must be unique unless meta.versionId differs (bdl-7)", path(), j)
			continue
		}
		seen[e.FullURL] = i
	}
}

// clip shortens a value quoted in diagnostics.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
