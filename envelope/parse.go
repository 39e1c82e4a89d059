package envelope

import (
	"fmt"
	"sort"
	"sync"
)

// Options configure a Parser.
type Options struct {
	// DefaultVersion is used by Parse(raw, VersionAuto) when the message shows
	// no version-specific element. Zero means R4.
	DefaultVersion Version
	// Limits bound the work done on hostile input.
	Limits Limits
}

// Parser validates message Bundles. It is safe for concurrent use and reuses
// its decoders, so keep one per process.
type Parser struct {
	defaultVersion Version
	lim            Limits
	scanners       sync.Pool
}

// NewParser returns a Parser with opts, defaults filled in.
func NewParser(opts Options) *Parser {
	p := &Parser{defaultVersion: opts.DefaultVersion, lim: opts.Limits.withDefaults()}
	if p.defaultVersion == VersionAuto {
		p.defaultVersion = R4
	}
	p.scanners.New = func() any { return newScanner() }
	return p
}

// Limits returns the limits in force, defaults filled in.
func (p *Parser) Limits() Limits { return p.lim }

// Parse validates raw as a FHIR message Bundle of version v (VersionAuto:
// detect it, see DetectVersion) and returns the message, or an *Error
// wrapping ErrMalformed, ErrLimit, ErrNotMessage or ErrInvalid that lists
// every issue found. The returned Message aliases raw; raw must not change
// while the Message is in use.
func (p *Parser) Parse(raw []byte, v Version) (*Message, error) {
	if len(raw) > p.lim.MaxBytes {
		return nil, &Error{Kind: ErrLimit, Issues: []Issue{{
			Severity: SeverityError, Code: IssueTooLong, Rule: RuleLimit, Expression: "Bundle",
			Diagnostics: fmt.Sprintf("the message is %d bytes, over the limit of %d", len(raw), p.lim.MaxBytes),
		}}}
	}
	s := p.scanners.Get().(*scanner)
	sc, err := s.scan(raw, p.lim)
	p.scanners.Put(s)
	if err != nil {
		return nil, err
	}

	c := &check{lim: p.lim, sc: sc, msg: &Message{Raw: raw}}
	if kind := c.bundleShape(); kind != nil {
		return nil, c.fail(kind)
	}
	detected, why := detectVersion(c.header)
	switch {
	case v != VersionAuto:
		c.version = v
	case detected != VersionAuto:
		c.version = detected
		c.note(SeverityInformation, IssueInformational, RuleVersion, "Bundle",
			"read as FHIR %s (%s)", detected.Release(), why)
	default:
		c.version = p.defaultVersion
		c.note(SeverityInformation, IssueInformational, RuleVersion, "Bundle",
			"read as FHIR %s, the default: the MessageHeader has no element specific to R4 or R5", c.version.Release())
	}
	c.msg.Version = c.version
	for _, rule := range messageRules {
		rule(c)
	}
	if c.failed() {
		if v != VersionAuto && detected != VersionAuto && detected != v {
			c.note(SeverityInformation, IssueInformational, RuleVersion, "Bundle",
				"validated as FHIR %s as asked, but the message looks like FHIR %s (%s)", v.Release(), detected.Release(), why)
		}
		return nil, c.fail(ErrInvalid)
	}
	c.msg.Issues = c.issues
	return c.msg, nil
}

// check carries one Parse through the rules.
type check struct {
	version Version
	lim     Limits
	sc      *scanned
	header  *node // the first entry's resource
	msg     *Message
	// badFullURL marks entries whose fullUrl entryRules already reported
	// as malformed (not a string, too long).
	badFullURL map[int]bool
	issues     []Issue
}

func (c *check) note(sev Severity, code IssueType, rule Rule, expr, format string, args ...any) {
	c.issues = append(c.issues, Issue{
		Severity: sev, Code: code, Rule: rule, Expression: expr,
		Diagnostics: fmt.Sprintf(format, args...),
	})
}

func (c *check) errorf(code IssueType, rule Rule, expr, format string, args ...any) {
	c.note(SeverityError, code, rule, expr, format, args...)
}

func (c *check) warnf(code IssueType, rule Rule, expr, format string, args ...any) {
	c.note(SeverityWarning, code, rule, expr, format, args...)
}

func (c *check) failed() bool {
	for _, is := range c.issues {
		if is.IsError() {
			return true
		}
	}
	return false
}

// fail returns an *Error of kind with the issues found, errors first.
func (c *check) fail(kind error) *Error {
	sort.SliceStable(c.issues, func(i, j int) bool {
		return c.issues[i].IsError() && !c.issues[j].IsError()
	})
	return &Error{Kind: kind, Issues: c.issues}
}

// str reads the string member name of n (whose FHIRPath is path). A member
// that is present but not a string, or longer than MaxFieldBytes, is an issue
// of rule; ok is false then, and when the member is absent.
func (c *check) str(n *node, path, name string, rule Rule) (s string, ok bool) {
	v := n.get(name)
	if v == nil {
		return "", false
	}
	if v.kind != '"' {
		expr := path + "." + name
		c.errorf(IssueStructure, rule, expr, "%s is %s, not a string", expr, kindName(v.kind))
		return "", false
	}
	if len(v.str) > c.lim.MaxFieldBytes {
		expr := path + "." + name
		c.errorf(IssueTooLong, RuleLimit, expr, "%s is %d bytes, over the limit of %d", expr, len(v.str), c.lim.MaxFieldBytes)
		return "", false
	}
	return v.str, true
}

// obj reads the object member name of n; present but not an object is an
// issue of rule.
func (c *check) obj(n *node, path, name string, rule Rule) *node {
	v := n.get(name)
	if v == nil {
		return nil
	}
	if v.kind != '{' {
		expr := path + "." + name
		c.errorf(IssueStructure, rule, expr, "%s is %s, not an object", expr, kindName(v.kind))
		return nil
	}
	return v
}

// arr reads the array member name of n; present but not an array is an issue
// of rule.
func (c *check) arr(n *node, path, name string, rule Rule) []*node {
	v := n.get(name)
	if v == nil {
		return nil
	}
	if v.kind != '[' {
		expr := path + "." + name
		c.errorf(IssueStructure, rule, expr, "%s is %s, not an array", expr, kindName(v.kind))
		return nil
	}
	return v.items
}
