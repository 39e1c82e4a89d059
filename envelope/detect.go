package envelope

// detectVersion guesses the FHIR release from the MessageHeader's shape and
// says why. Elements only R5 has: eventCanonical, source/destination
// endpointUrl or endpointReference, an Identifier in response.identifier.
// Elements only R4 has: eventUri, source/destination endpoint, an id in
// response.identifier. It returns VersionAuto when there is no marker, or
// markers of both releases.
func detectVersion(h *node) (Version, string) {
	var r4, r5 string
	mark := func(v *string, why string) {
		if *v == "" {
			*v = why
		}
	}
	if h.has("eventCanonical") {
		mark(&r5, "MessageHeader.eventCanonical is present")
	}
	if h.has("eventUri") {
		mark(&r4, "MessageHeader.eventUri is present")
	}
	endpoints := []*node{h.get("source")}
	if d := h.get("destination"); d != nil {
		endpoints = append(endpoints, d.items...)
	}
	for _, ep := range endpoints {
		if ep.has("endpointUrl") || ep.has("endpointReference") {
			mark(&r5, "an R5 endpointUrl/endpointReference is present")
		}
		if ep.has("endpoint") {
			mark(&r4, "an R4 endpoint is present")
		}
	}
	if id := h.get("response").get("identifier"); id != nil {
		switch id.kind {
		case '{':
			mark(&r5, "MessageHeader.response.identifier is an Identifier")
		case '"':
			mark(&r4, "MessageHeader.response.identifier is an id")
		}
	}
	switch {
	case r5 != "" && r4 == "":
		return R5, r5
	case r4 != "" && r5 == "":
		return R4, r4
	}
	return VersionAuto, ""
}
