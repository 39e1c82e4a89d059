// Package envelope decides whether bytes are a well-formed FHIR message
// Bundle (R4 4.0.1 or R5 5.0.0) and who the message is.
//
// It reads only what the messaging contract needs (the Bundle, its entries'
// fullUrl/resourceType/id and the MessageHeader), in one streaming pass that
// also enforces the hostile-input limits of [Limits], and keeps the original
// bytes untouched so that the gateway can forward a message byte for byte.
//
// The package is pure: it performs no I/O, keeps no global mutable state and
// imports no sibling package of fhirgw. Besides [Parse] it builds what the
// gateway emits: OperationOutcomes ([NewOutcome]) and response messages
// ([Responder]).
package envelope
