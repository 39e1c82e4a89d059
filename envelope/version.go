package envelope

import (
	"fmt"
	"strings"
)

// Version is a FHIR release the envelope understands.
type Version uint8

const (
	// VersionAuto asks Parse to detect the release from the MessageHeader's
	// shape (see DetectVersion), falling back to Options.DefaultVersion.
	VersionAuto Version = iota
	// R4 is FHIR 4.0.1.
	R4
	// R5 is FHIR 5.0.0.
	R5
)

// ParseVersion reads a FHIR version as written in a Content-Type fhirVersion
// parameter or a command-line flag: "4.0", "4.0.1", "R4", "5.0", "5.0.0", "R5".
// The empty string and "auto" give VersionAuto.
func ParseVersion(s string) (Version, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return VersionAuto, nil
	case "4.0", "4.0.1", "r4":
		return R4, nil
	case "5.0", "5.0.0", "r5":
		return R5, nil
	}
	return VersionAuto, fmt.Errorf("unsupported FHIR version %q (use 4.0 or 5.0)", s)
}

// String returns the short form used in the fhirVersion MIME parameter.
func (v Version) String() string {
	switch v {
	case R4:
		return "4.0"
	case R5:
		return "5.0"
	}
	return "auto"
}

// Release returns the full release number, e.g. "4.0.1".
func (v Version) Release() string {
	switch v {
	case R4:
		return "4.0.1"
	case R5:
		return "5.0.0"
	}
	return ""
}

// Name returns "R4" or "R5".
func (v Version) Name() string {
	switch v {
	case R4:
		return "R4"
	case R5:
		return "R5"
	}
	return "auto"
}

// MediaType is the Content-Type of FHIR JSON of version v.
func (v Version) MediaType() string { return "application/fhir+json; fhirVersion=" + v.String() }
