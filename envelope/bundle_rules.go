package envelope

import (
	"fmt"
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
		path := fmt.Sprintf("Bundle.entry[%d]", i)
		if e.kind != '{' {
			c.errorf(IssueStructure, RuleEntryResource, path, "%s is %s, not an object", path, kindName(e.kind))
			continue
		}
		if e.hasRequest {
			rule, why := RuleEntryRequestR4, "entry.request is only allowed in batch, transaction and history Bundles (bdl-3)"
			if c.version == R5 {
				rule, why = RuleEntryRequestR5, "message entries must not have request or response (bdl-3a)"
			}
			c.errorf(IssueInvariant, rule, path+".request", "%s.request is present: %s", path, why)
		}
		if e.hasResponse {
			rule, why := RuleEntryResponseR4, "entry.response is only allowed in response and history Bundles (bdl-4)"
			if c.version == R5 {
				rule, why = RuleEntryRequestR5, "message entries must not have request or response (bdl-3a)"
			}
			c.errorf(IssueInvariant, rule, path+".response", "%s.response is present: %s", path, why)
		}
		ent := &c.msg.Entries[i]
		if e.fullURL != nil {
			if e.fullURL.kind != '"' {
				c.errorf(IssueStructure, RuleFullURLPresent, path+".fullUrl", "%s.fullUrl is %s, not a string", path, kindName(e.fullURL.kind))
			} else {
				ent.FullURL = e.fullURL.str
			}
		}
		res := e.resource
		rpath := path + ".resource"
		switch {
		case res == nil:
			c.errorf(IssueRequired, RuleEntryResource, rpath, "%s is missing: every entry of a message carries a resource", rpath)
			continue
		case res.kind != '{':
			c.errorf(IssueStructure, RuleEntryResource, rpath, "%s is %s, not an object", rpath, kindName(res.kind))
			continue
		}
		rt, ok := c.str(res, rpath, "resourceType", RuleEntryResource)
		if !ok || rt == "" {
			if !res.has("resourceType") {
				c.errorf(IssueRequired, RuleEntryResource, rpath+".resourceType", "%s has no resourceType", rpath)
			}
			continue
		}
		ent.ResourceType = rt
		ent.ID, _ = c.str(res, rpath, "id", RuleEntryResource)
		if meta := c.obj(res, rpath, "meta", RuleEntryResource); meta != nil {
			ent.VersionID, _ = c.str(meta, rpath+".meta", "versionId", RuleEntryResource)
		}
	}
}

// fullURLRules: R5 requires a fullUrl on every entry (bdl-15; R4 only says
// SHALL in prose, so a warning); no fullUrl is version specific (bdl-8); and
// fullUrls are unique unless meta.versionId differs (bdl-7).
func (c *check) fullURLRules() {
	seen := make(map[string]int, len(c.msg.Entries))
	for i, e := range c.msg.Entries {
		path := fmt.Sprintf("Bundle.entry[%d].fullUrl", i)
		if c.sc.entries[i].kind != '{' || (c.sc.entries[i].fullURL != nil && c.sc.entries[i].fullURL.kind != '"') {
			continue
		}
		if e.FullURL == "" {
			if c.version == R5 {
				c.errorf(IssueInvariant, RuleFullURLPresent, path, "%s is missing: every entry of an R5 message has a fullUrl (bdl-15)", path)
			} else {
				c.warnf(IssueRequired, RuleFullURLPresent, path, "%s is missing: references to this entry can only resolve by resource type and id", path)
			}
			continue
		}
		if strings.Contains(e.FullURL, "/_history/") {
			c.errorf(IssueInvariant, RuleFullURLHistory, path, "%s is a version-specific reference; fullUrl cannot contain /_history/ (bdl-8)", path)
		}
		if j, dup := seen[e.FullURL]; dup && c.msg.Entries[j].VersionID == e.VersionID {
			c.errorf(IssueInvariant, RuleFullURLUnique, path,
				"%s repeats the fullUrl of Bundle.entry[%d]: fullUrls must be unique unless meta.versionId differs (bdl-7)", path, j)
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
