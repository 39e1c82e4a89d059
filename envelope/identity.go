package envelope

// identityRule picks the message identity (see Identity for the order) and
// warns when it had to fall back. A message with no identity at all is
// rejected: duplicates could not be detected nor responses correlated.
func (c *check) identityRule() {
	m := c.msg
	m.Header.ID, _ = c.str(c.header, headerPath, "id", RuleIdentity)
	type candidate struct {
		source IdentitySource
		system string
		value  string
		expr   string
	}
	header := candidate{FromHeaderID, "", m.Header.ID, headerPath + ".id"}
	bundleID := candidate{FromBundleID, "", m.BundleID, "Bundle.id"}
	bundleIdent := candidate{FromBundleIdentifier, m.BundleIdentifier.System, m.BundleIdentifier.Value, "Bundle.identifier"}
	order := []candidate{header, bundleID, bundleIdent}
	if c.version == R5 {
		order = []candidate{bundleIdent, header, bundleID}
	}
	for i, cand := range order {
		if cand.value == "" {
			continue
		}
		if len(cand.value)+len(cand.system)+1 > MaxIdentityBytes {
			c.errorf(IssueTooLong, RuleIdentity, cand.expr,
				"the message identity %s is over %d bytes", cand.source, MaxIdentityBytes)
			return
		}
		m.Identity = Identity{Source: cand.source, System: cand.system, Value: cand.value}
		if i > 0 {
			c.warnf(IssueIncomplete, RuleIdentity, order[0].expr,
				"%s is missing: the message is identified by %s instead", order[0].source, cand.source)
		}
		return
	}
	c.errorf(IssueRequired, RuleIdentity, order[0].expr,
		"the message has no identity: FHIR %s identifies a message by %s (or, failing that, %s or %s)",
		c.version.Name(), order[0].source, order[1].source, order[2].source)
}
