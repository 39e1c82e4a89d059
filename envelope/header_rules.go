package envelope

import "fmt"

// eventRule: exactly one event[x], of a kind the version allows (R4
// eventCoding | eventUri, R5 eventCoding | eventCanonical). A Coding needs a
// code; one without a system is tolerated with a warning (real senders omit it).
func (c *check) eventRule() {
	h := c.header
	allowed := "eventCoding or eventUri"
	if c.version == R5 {
		allowed = "eventCoding or eventCanonical"
	}
	var present []string
	for _, name := range []string{"eventCoding", "eventUri", "eventCanonical"} {
		if h.has(name) {
			present = append(present, name)
		}
	}
	switch len(present) {
	case 0:
		c.errorf(IssueRequired, RuleEvent, headerPath+".event",
			"MessageHeader.event[x] is missing: a FHIR %s message names its event with %s", c.version.Name(), allowed)
		return
	case 1:
	default:
		c.errorf(IssueStructure, RuleEvent, headerPath+"."+present[1],
			"MessageHeader has both %s and %s: event[x] takes exactly one", present[0], present[1])
		return
	}
	name := present[0]
	expr := headerPath + "." + name
	if (c.version == R4 && name == "eventCanonical") || (c.version == R5 && name == "eventUri") {
		c.errorf(IssueStructure, RuleEvent, expr,
			"MessageHeader.%s is not allowed in FHIR %s: use %s", name, c.version.Name(), allowed)
		return
	}
	ev := &c.msg.Header.Event
	if name != "eventCoding" {
		uri, ok := c.str(h, headerPath, name, RuleEvent)
		if ok && uri == "" {
			c.errorf(IssueRequired, RuleEvent, expr, "MessageHeader.%s is empty", name)
		}
		ev.Kind, ev.URI = EventURI, uri
		if name == "eventCanonical" {
			ev.Kind = EventCanonical
		}
		return
	}
	coding := c.obj(h, headerPath, name, RuleEvent)
	if coding == nil {
		return
	}
	ev.Kind = EventCoding
	ev.System, _ = c.str(coding, expr, "system", RuleEvent)
	ev.Display, _ = c.str(coding, expr, "display", RuleEvent)
	code, ok := c.str(coding, expr, "code", RuleEvent)
	if !ok || code == "" {
		if !coding.has("code") || ok {
			c.errorf(IssueRequired, RuleEvent, expr+".code", "MessageHeader.eventCoding has no code: the event cannot be routed")
		}
		return
	}
	ev.Code = code
	if ev.System == "" && !coding.has("system") {
		c.warnf(IssueIncomplete, RuleEvent, expr+".system",
			"MessageHeader.eventCoding has no system: only a route written for a missing system (|%s) matches it", clip(code))
	}
}

// sourceRule: source is present; R4 needs source.endpoint (url), R5 allows at
// most one of endpointUrl and endpointReference.
func (c *check) sourceRule() {
	const path = headerPath + ".source"
	src := c.obj(c.header, headerPath, "source", RuleSource)
	if src == nil {
		if !c.header.has("source") {
			c.errorf(IssueRequired, RuleSource, path, "MessageHeader.source is missing: a message says where it comes from")
		}
		return
	}
	c.msg.Header.Source = c.endpoint(src, path, RuleSource, true)
}

// destinationRule: each destination has an endpoint in R4, at most one
// endpoint[x] in R5.
func (c *check) destinationRule() {
	for i, d := range c.arr(c.header, headerPath, "destination", RuleDestination) {
		path := fmt.Sprintf("%s.destination[%d]", headerPath, i)
		if d.kind != '{' {
			c.errorf(IssueStructure, RuleDestination, path, "%s is %s, not an object", path, kindName(d.kind))
			continue
		}
		c.msg.Header.Destinations = append(c.msg.Header.Destinations, c.endpoint(d, path, RuleDestination, false))
	}
}

// endpoint reads a source or destination, checking its endpoint[x] for the
// version.
func (c *check) endpoint(n *node, path string, rule Rule, isSource bool) Endpoint {
	var ep Endpoint
	ep.Name, _ = c.str(n, path, "name", rule)
	ep.Software, _ = c.str(n, path, "software", rule)
	ep.Version, _ = c.str(n, path, "version", rule)
	what := "destination"
	if isSource {
		what = "source"
	}
	if c.version == R4 {
		for _, r5 := range []string{"endpointUrl", "endpointReference"} {
			if n.has(r5) {
				c.errorf(IssueStructure, rule, path+"."+r5, "MessageHeader.%s.%s is an R5 element: FHIR R4 uses %s.endpoint", what, r5, what)
			}
		}
		url, ok := c.str(n, path, "endpoint", rule)
		if !ok || url == "" {
			if !n.has("endpoint") || ok {
				c.errorf(IssueRequired, rule, path+".endpoint", "MessageHeader.%s.endpoint is missing: FHIR R4 requires it", what)
			}
		}
		ep.URL = url
		return ep
	}
	if n.has("endpoint") {
		c.errorf(IssueStructure, rule, path+".endpoint", "MessageHeader.%s.endpoint is an R4 element: FHIR R5 uses endpointUrl or endpointReference", what)
	}
	ep.URL, _ = c.str(n, path, "endpointUrl", rule)
	if ref := c.obj(n, path, "endpointReference", rule); ref != nil {
		ep.Reference, _ = c.str(ref, path+".endpointReference", "reference", rule)
		if n.has("endpointUrl") {
			c.errorf(IssueStructure, rule, path+".endpointReference",
				"MessageHeader.%s has both endpointUrl and endpointReference: endpoint[x] takes one", what)
		}
	}
	return ep
}

// responseRule: a response has an identifier of the version's type (R4 id,
// R5 Identifier) and a code in ok | transient-error | fatal-error.
func (c *check) responseRule() {
	const path = headerPath + ".response"
	r := c.obj(c.header, headerPath, "response", RuleResponse)
	if r == nil {
		return
	}
	resp := &Response{}
	c.msg.Header.Response = resp
	idv := r.get("identifier")
	var value string
	checkValue := false // the identifier has the right shape: its value must not be empty
	switch {
	case idv == nil:
		c.errorf(IssueRequired, RuleResponse, path+".identifier",
			"MessageHeader.response.identifier is missing: a response names the message it answers")
	case c.version == R4 && idv.kind != '"':
		c.errorf(IssueStructure, RuleResponse, path+".identifier",
			"MessageHeader.response.identifier is %s: in FHIR R4 it is an id (the MessageHeader.id answered)", kindName(idv.kind))
	case c.version == R4:
		value, checkValue = c.str(r, path, "identifier", RuleResponse)
	case idv.kind != '{':
		c.errorf(IssueStructure, RuleResponse, path+".identifier",
			"MessageHeader.response.identifier is %s: in FHIR R5 it is an Identifier (the Bundle.identifier answered)", kindName(idv.kind))
	default:
		resp.Identifier.System, _ = c.str(idv, path+".identifier", "system", RuleResponse)
		value, checkValue = c.str(idv, path+".identifier", "value", RuleResponse)
		checkValue = checkValue || !idv.has("value")
	}
	resp.Identifier.Value = value
	if checkValue && value == "" {
		c.errorf(IssueRequired, RuleResponse, path+".identifier", "MessageHeader.response.identifier has no value")
	}

	code, ok := c.str(r, path, "code", RuleResponse)
	switch {
	case !r.has("code"):
		c.errorf(IssueRequired, RuleResponse, path+".code", "MessageHeader.response.code is missing: use ok, transient-error or fatal-error")
	case ok && !ResponseCode(code).Valid():
		c.errorf(IssueCodeInvalid, RuleResponse, path+".code",
			"MessageHeader.response.code '%s' is not one of ok, transient-error, fatal-error", clip(code))
	case ok:
		resp.Code = ResponseCode(code)
	}
	if d := c.obj(r, path, "details", RuleResponseDetails); d != nil {
		resp.Details, _ = c.str(d, path+".details", "reference", RuleResponseDetails)
	}
}
