// Package replay sends FHIR message Bundles to a running fhirgw, over HTTP
// or AMQP, and checks what comes back against expectations: the immediate
// answer (status, OperationOutcome issue code, duplicate mark) and what
// follows asynchronously (the filler's response code, the Task's status and
// fillers), within a time limit. It is the engine of `fhirgw replay`.
//
// A Plan lists the messages to send, in order, with their expectations; a
// Manifest (YAML, see Manifest) is how testers write one. Run sends them,
// with bounded concurrency and an optional rate, through a Target (HTTP or
// AMQP), following up each answer as its expectations require, and returns
// one Result per message. Freshener rewrites message identities so that the
// same fixtures can be replayed without meeting the gateway's duplicate
// detection. Report renders results as a table, JSON or JUnit XML.
package replay
