package gateway

import (
	"mime"
	"net/http"

	"github.com/fhirgw/fhirgw/envelope"
)

// fhirJSON are the media types accepted as FHIR JSON.
var fhirJSON = map[string]bool{
	"application/fhir+json": true,
	"application/json":      true,
	"application/json+fhir": true, // the DSTU2-era name, still sent by some clients
}

// requestVersion reads the FHIR version of a request body from its
// Content-Type: the fhirVersion parameter, else the configured default.
func (g *Gateway) requestVersion(r *http.Request) (envelope.Version, *Error) {
	return g.versionOf(r.Header.Get("Content-Type"))
}

// versionOf reads the FHIR version from a content type.
func (g *Gateway) versionOf(ct string) (envelope.Version, *Error) {
	if ct == "" {
		return 0, edgeError(http.StatusUnsupportedMediaType, ErrMediaType, envelope.IssueNotSupported, "",
			"the request has no Content-Type; send application/fhir+json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !fhirJSON[mt] {
		return 0, edgeError(http.StatusUnsupportedMediaType, ErrMediaType, envelope.IssueNotSupported, "",
			"Content-Type %q is not FHIR JSON; send application/fhir+json", ct)
	}
	fv, ok := params["fhirversion"]
	if !ok {
		return g.version, nil
	}
	v, err := envelope.ParseVersion(fv)
	if err != nil || v == envelope.VersionAuto {
		return 0, edgeError(http.StatusUnsupportedMediaType, ErrMediaType, envelope.IssueNotSupported, "",
			"fhirVersion=%s is not supported; use 4.0 or 5.0", fv)
	}
	return v, nil
}

// contentType is the Content-Type of FHIR JSON answers of version v.
func contentType(v envelope.Version) string { return v.MediaType() }
