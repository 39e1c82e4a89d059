package envelope

// Rule names a check of the envelope. Each issue carries the rule that raised
// it in OperationOutcome.issue.details.coding (system RuleSystem), so clients
// can act on a stable code rather than on diagnostics text. FHIR invariant ids
// (bdl-*) are used where the rule is one.
type Rule string

// RuleSystem is the code system of Rule codes in emitted OperationOutcomes.
const RuleSystem = "https://fhirgw.example/fhir/CodeSystem/envelope-rule"

// The catalogue of envelope rules.
const (
	RuleJSON              Rule = "json"                 // input is one well-formed JSON object: valid UTF-8, no duplicate keys
	RuleLimit             Rule = "limit"                // size, depth, string and array limits
	RuleResourceType      Rule = "bundle-resource-type" // top level is a Bundle
	RuleBundleType        Rule = "bundle-type"          // Bundle.type = message
	RuleFirstEntry        Rule = "bdl-12"               // first entry is a MessageHeader
	RuleEntryResource     Rule = "entry-resource"       // every entry carries a resource with a resourceType
	RuleEntryRequestR4    Rule = "bdl-3"                // R4: no entry.request outside batch/transaction/history
	RuleEntryResponseR4   Rule = "bdl-4"                // R4: no entry.response outside *-response/history
	RuleEntryRequestR5    Rule = "bdl-3a"               // R5: message entries have neither request nor response
	RuleFullURLPresent    Rule = "bdl-15"               // R5: every entry has a fullUrl (R4: a warning)
	RuleFullURLUnique     Rule = "bdl-7"                // fullUrls are unique (unless meta.versionId differs)
	RuleFullURLHistory    Rule = "bdl-8"                // fullUrl is not a version-specific reference
	RuleEvent             Rule = "msh-event"            // exactly one event[x] of the kinds the version allows
	RuleSource            Rule = "msh-source"           // source present; R4 source.endpoint present
	RuleDestination       Rule = "msh-destination"      // R4 destination.endpoint present; R5 at most one endpoint[x]
	RuleResponse          Rule = "msh-response"         // response.identifier of the version's type, code in the value set
	RuleFocus             Rule = "msh-focus"            // focus references resolve inside the Bundle
	RuleResponseDetails   Rule = "msh-response-details" // response.details resolves inside the Bundle
	RuleIdentity          Rule = "msg-identity"         // the message has an identity (with documented fallbacks)
	RuleVersion           Rule = "fhir-version"         // which FHIR release the message was read as
	RuleReferenceFallback Rule = "reference-by-id"      // a reference resolved only by a bare resource id
)
