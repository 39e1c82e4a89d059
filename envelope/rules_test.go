package envelope

import (
	"errors"
	"strings"
	"testing"
)

const (
	h    = "entry.0.resource"
	hExp = "Bundle.entry[0].resource"
)

// ruleCase is one row of the rule table: a message (base plus edits, or raw
// input) and what Parse must say about it.
type ruleCase struct {
	name    string
	version Version // version asked of Parse; VersionAuto detects
	base    string  // baseR4 when empty
	edits   []edit
	input   string // used instead of base+edits when set
	lim     Limits

	kind error // nil: the message is valid
	rule Rule  // the first error's rule, or a warning that must be present
	expr string
}

func TestRules(t *testing.T) {
	cases := []ruleCase{
		// json
		{name: "json/pass", rule: ""},
		{name: "json/duplicate-key", input: `{"resourceType":"Bundle","type":"message","type":"message"}`, kind: ErrMalformed, rule: RuleJSON},
		{name: "json/invalid-utf8", input: "{\"resourceType\":\"Bundle\",\"id\":\"\xff\xfe\"}", kind: ErrMalformed, rule: RuleJSON},
		{name: "json/syntax", input: `{"resourceType":"Bundle",}`, kind: ErrMalformed, rule: RuleJSON},
		{name: "json/truncated", input: `{"resourceType":"Bundle","entry":[`, kind: ErrMalformed, rule: RuleJSON},
		{name: "json/trailing-data", input: `{"resourceType":"Bundle"} {}`, kind: ErrMalformed, rule: RuleJSON},
		{name: "json/top-level-array", input: `[{"resourceType":"Bundle"}]`, kind: ErrMalformed, rule: RuleJSON},
		{name: "json/empty", input: "  \n", kind: ErrMalformed, rule: RuleJSON},

		// limits
		{name: "limit/depth-pass", edits: []edit{set(h+".extension", raw(nested(10)))}},
		{name: "limit/depth", edits: []edit{set(h+".extension", raw(nested(DefaultMaxDepth)))}, kind: ErrLimit, rule: RuleLimit, expr: "Bundle"},
		{name: "limit/string", lim: Limits{MaxStringBytes: 200}, edits: []edit{set("entry.1.resource.note", strings.Repeat("x", 300))}, kind: ErrLimit, rule: RuleLimit},
		{name: "limit/array", lim: Limits{MaxArrayItems: 5}, edits: []edit{set("entry.1.resource.note", raw("[1,2,3,4,5,6]"))}, kind: ErrLimit, rule: RuleLimit},
		{name: "limit/bytes", lim: Limits{MaxBytes: 100}, kind: ErrLimit, rule: RuleLimit},
		{name: "limit/field", lim: Limits{MaxFieldBytes: 20}, kind: ErrInvalid, rule: RuleLimit, expr: "Bundle.entry[0].fullUrl"},

		// bundle-resource-type
		{name: "resource-type/not-bundle", edits: []edit{set("resourceType", "Parameters")}, kind: ErrNotMessage, rule: RuleResourceType, expr: "resourceType"},
		{name: "resource-type/missing", edits: []edit{del("resourceType")}, kind: ErrNotMessage, rule: RuleResourceType, expr: "resourceType"},

		// bundle-type
		{name: "bundle-type/missing", edits: []edit{del("type")}, kind: ErrInvalid, rule: RuleBundleType, expr: "Bundle.type"},
		{name: "bundle-type/collection", edits: []edit{set("type", "collection")}, kind: ErrNotMessage, rule: RuleBundleType, expr: "Bundle.type"},
		{name: "bundle-type/not-string", edits: []edit{set("type", 7)}, kind: ErrInvalid, rule: RuleBundleType, expr: "Bundle.type"},

		// bdl-12
		{name: "bdl-12/no-entries", edits: []edit{set("entry", raw("[]"))}, kind: ErrInvalid, rule: RuleFirstEntry, expr: "Bundle.entry"},
		{name: "bdl-12/no-entry-element", edits: []edit{del("entry")}, kind: ErrInvalid, rule: RuleFirstEntry, expr: "Bundle.entry"},
		{name: "bdl-12/first-not-header", edits: []edit{set("entry.0.resource", raw(`{"resourceType":"Parameters"}`))}, kind: ErrInvalid, rule: RuleFirstEntry, expr: hExp},
		{name: "bdl-12/first-without-resource", edits: []edit{del("entry.0.resource")}, kind: ErrInvalid, rule: RuleFirstEntry, expr: hExp},

		// entry-resource
		{name: "entry-resource/missing", edits: []edit{del("entry.1.resource")}, kind: ErrInvalid, rule: RuleEntryResource, expr: "Bundle.entry[1].resource"},
		{name: "entry-resource/no-resource-type", edits: []edit{del("entry.1.resource.resourceType")}, kind: ErrInvalid, rule: RuleEntryResource, expr: "Bundle.entry[1].resource.resourceType"},
		{name: "entry-resource/entry-not-object", edits: []edit{set("entry.2", "Patient")}, kind: ErrInvalid, rule: RuleEntryResource, expr: "Bundle.entry[2]"},

		// bdl-3, bdl-4, bdl-3a
		{name: "bdl-3/request", edits: []edit{set("entry.1.request", raw(`{"method":"POST","url":"ServiceRequest"}`))}, kind: ErrInvalid, rule: RuleEntryRequestR4, expr: "Bundle.entry[1].request"},
		{name: "bdl-4/response", edits: []edit{set("entry.1.response", raw(`{"status":"201"}`))}, kind: ErrInvalid, rule: RuleEntryResponseR4, expr: "Bundle.entry[1].response"},
		{name: "bdl-3a/r5-request", base: baseR5, edits: []edit{set("entry.1.request", raw(`{"method":"POST","url":"ServiceRequest"}`))}, kind: ErrInvalid, rule: RuleEntryRequestR5, expr: "Bundle.entry[1].request"},
		{name: "bdl-3a/r5-response", base: baseR5, edits: []edit{set("entry.1.response", raw(`{"status":"201"}`))}, kind: ErrInvalid, rule: RuleEntryRequestR5, expr: "Bundle.entry[1].response"},

		// bdl-15
		{name: "bdl-15/r5-pass", base: baseR5},
		{name: "bdl-15/r5-missing", base: baseR5, edits: []edit{del("entry.1.fullUrl")}, kind: ErrInvalid, rule: RuleFullURLPresent, expr: "Bundle.entry[1].fullUrl"},
		{name: "bdl-15/r4-missing-warns", edits: []edit{del("entry.2.fullUrl")}, rule: RuleFullURLPresent, expr: "Bundle.entry[2].fullUrl"},
		{name: "bdl-15/r5-empty", base: baseR5, edits: []edit{set("entry.1.fullUrl", "")}, kind: ErrInvalid, rule: RuleFullURLPresent, expr: "Bundle.entry[1].fullUrl"},

		// bdl-7
		{name: "bdl-7/duplicate", edits: []edit{set("entry.2.fullUrl", "urn:uuid:0d9d3a35-0000-4000-8000-000000000002")}, kind: ErrInvalid, rule: RuleFullURLUnique, expr: "Bundle.entry[2].fullUrl"},
		{name: "bdl-7/versions-differ", edits: []edit{
			set("entry.2.fullUrl", "urn:uuid:0d9d3a35-0000-4000-8000-000000000002"),
			set("entry.1.resource.meta", raw(`{"versionId":"1"}`)),
			set("entry.2.resource.meta", raw(`{"versionId":"2"}`)),
		}},

		// bdl-8
		{name: "bdl-8/history", edits: []edit{set("entry.2.fullUrl", "https://ehr.example/fhir/Patient/pat-1/_history/3")}, kind: ErrInvalid, rule: RuleFullURLHistory, expr: "Bundle.entry[2].fullUrl"},

		// msh-event
		{name: "event/missing", edits: []edit{del(h + ".eventCoding")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".event"},
		{name: "event/two", edits: []edit{set(h+".eventUri", "https://fhirgw.example/events/lab-order")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".eventUri"},
		{name: "event/r4-uri", edits: []edit{del(h + ".eventCoding"), set(h+".eventUri", "https://fhirgw.example/events/lab-order")}},
		{name: "event/r4-canonical", version: R4, edits: []edit{del(h + ".eventCoding"), set(h+".eventCanonical", "https://fhirgw.example/EventDefinition/lab-order")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".eventCanonical"},
		{name: "event/r5-canonical", base: baseR5, edits: []edit{del(h + ".eventCoding"), set(h+".eventCanonical", "https://fhirgw.example/EventDefinition/lab-order")}},
		{name: "event/r5-uri", base: baseR5, version: R5, edits: []edit{del(h + ".eventCoding"), set(h+".eventUri", "https://fhirgw.example/events/lab-order")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".eventUri"},
		{name: "event/coding-without-code", edits: []edit{del(h + ".eventCoding.code")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".eventCoding.code"},
		{name: "event/coding-not-object", edits: []edit{set(h+".eventCoding", "lab-order")}, kind: ErrInvalid, rule: RuleEvent, expr: hExp + ".eventCoding"},
		{name: "event/coding-without-system-warns", edits: []edit{del(h + ".eventCoding.system")}, rule: RuleEvent, expr: hExp + ".eventCoding.system"},

		// msh-source
		{name: "source/missing", edits: []edit{del(h + ".source")}, kind: ErrInvalid, rule: RuleSource, expr: hExp + ".source"},
		{name: "source/r4-no-endpoint", edits: []edit{del(h + ".source.endpoint")}, kind: ErrInvalid, rule: RuleSource, expr: hExp + ".source.endpoint"},
		{name: "source/r4-endpoint-url", version: R4, edits: []edit{del(h + ".source.endpoint"), set(h+".source.endpointUrl", "https://ehr.example/fhir")}, kind: ErrInvalid, rule: RuleSource, expr: hExp + ".source.endpointUrl"},
		{name: "source/r5-no-endpoint", base: baseR5, edits: []edit{set(h+".source", raw(`{"name":"ehr"}`))}},
		{name: "source/r5-both-endpoints", base: baseR5, edits: []edit{set(h+".source.endpointReference", raw(`{"reference":"Endpoint/e1"}`))}, kind: ErrInvalid, rule: RuleSource, expr: hExp + ".source.endpointReference"},

		// msh-destination
		{name: "destination/r4-no-endpoint", edits: []edit{set(h+".destination", raw(`[{"name":"lab"}]`))}, kind: ErrInvalid, rule: RuleDestination, expr: hExp + ".destination[0].endpoint"},
		{name: "destination/r4-none", edits: []edit{del(h + ".destination")}},
		{name: "destination/not-array", edits: []edit{set(h+".destination", raw(`{"endpoint":"https://lab.example/fhir"}`))}, kind: ErrInvalid, rule: RuleDestination, expr: hExp + ".destination"},

		// msh-response
		{name: "response/r4-pass", edits: []edit{set(h+".response", raw(`{"identifier":"header-0","code":"ok"}`))}},
		{name: "response/r5-pass", base: baseR5, edits: []edit{set(h+".response", raw(`{"identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"},"code":"fatal-error"}`))}},
		{name: "response/r4-identifier-object", version: R4, edits: []edit{set(h+".response", raw(`{"identifier":{"value":"header-0"},"code":"ok"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.identifier"},
		{name: "response/r5-identifier-string", base: baseR5, version: R5, edits: []edit{set(h+".response", raw(`{"identifier":"header-0","code":"ok"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.identifier"},
		{name: "response/r5-identifier-without-value", base: baseR5, edits: []edit{set(h+".response", raw(`{"identifier":{"system":"urn:x"},"code":"ok"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.identifier"},
		{name: "response/bad-code", edits: []edit{set(h+".response", raw(`{"identifier":"header-0","code":"accepted"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.code"},
		{name: "response/no-code", edits: []edit{set(h+".response", raw(`{"identifier":"header-0"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.code"},
		{name: "response/no-identifier", edits: []edit{set(h+".response", raw(`{"code":"ok"}`))}, kind: ErrInvalid, rule: RuleResponse, expr: hExp + ".response.identifier"},

		// msh-focus
		{name: "focus/relative", edits: []edit{set(h+".focus", raw(`[{"reference":"Patient/pat-1"}]`))}},
		{name: "focus/absolute", edits: []edit{set(h+".focus", raw(`[{"reference":"https://ehr.example/fhir/Patient/pat-1"}]`))}},
		{name: "focus/unresolved", edits: []edit{set(h+".focus", raw(`[{"reference":"urn:uuid:0d9d3a35-0000-4000-8000-00000000dead"}]`))}, kind: ErrInvalid, rule: RuleFocus, expr: hExp + ".focus[0].reference"},
		{name: "focus/other-server", edits: []edit{set(h+".focus", raw(`[{"reference":"https://elsewhere.example/fhir/Patient/pat-1"}]`))}, kind: ErrInvalid, rule: RuleFocus, expr: hExp + ".focus[0].reference"},
		{name: "focus/r5-identifier-only", base: baseR5, edits: []edit{set(h+".focus", raw(`[{"identifier":{"value":"order-1"}}]`))}, kind: ErrInvalid, rule: RuleFocus, expr: hExp + ".focus[0].reference"},
		{name: "focus/r4-identifier-only-warns", edits: []edit{set(h+".focus", raw(`[{"identifier":{"value":"order-1"}}]`))}, rule: RuleFocus, expr: hExp + ".focus[0].reference"},
		{name: "focus/by-id-warns", edits: []edit{set(h+".focus", raw(`[{"reference":"order-1"}]`))}, rule: RuleReferenceFallback, expr: hExp + ".focus[0].reference"},

		// msh-response-details
		{name: "details/resolves", edits: []edit{set(h+".response", raw(`{"identifier":"header-0","code":"ok","details":{"reference":"ServiceRequest/order-1"}}`))}},
		{name: "details/unresolved", edits: []edit{set(h+".response", raw(`{"identifier":"header-0","code":"ok","details":{"reference":"OperationOutcome/oo-1"}}`))}, kind: ErrInvalid, rule: RuleResponseDetails, expr: hExp + ".response.details.reference"},

		// msg-identity
		{name: "identity/r4-bundle-id-fallback", edits: []edit{del(h + ".id")}, rule: RuleIdentity, expr: hExp + ".id"},
		{name: "identity/r4-bundle-identifier-fallback", edits: []edit{del(h + ".id"), del("id"), set("identifier", raw(`{"system":"urn:x","value":"msg-1"}`))}, rule: RuleIdentity, expr: hExp + ".id"},
		{name: "identity/r4-none", edits: []edit{del(h + ".id"), del("id")}, kind: ErrInvalid, rule: RuleIdentity, expr: hExp + ".id"},
		{name: "identity/r5-header-fallback", base: baseR5, edits: []edit{del("identifier")}, rule: RuleIdentity, expr: "Bundle.identifier"},
		{name: "identity/r5-none", base: baseR5, edits: []edit{del("identifier"), del("id"), del(h + ".id")}, kind: ErrInvalid, rule: RuleIdentity, expr: "Bundle.identifier"},
		{name: "identity/too-long", edits: []edit{set(h+".id", strings.Repeat("a", 300))}, kind: ErrInvalid, rule: RuleIdentity, expr: hExp + ".id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := []byte(tc.input)
			if tc.input == "" {
				base := tc.base
				if base == "" {
					base = baseR4
				}
				input = mutate(t, base, tc.edits...)
			}
			msg, err := NewParser(Options{Limits: tc.lim}).Parse(input, tc.version)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("want a valid message, got %v", err)
				}
				if tc.rule != "" && !hasIssue(msg.Issues, tc.rule, tc.expr) {
					t.Errorf("want a warning of rule %s at %s, got %+v", tc.rule, tc.expr, msg.Issues)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
				t.Fatalf("want %v, got %v", tc.kind, err)
			}
			first := e.Issues[0]
			if !first.IsError() || first.Rule != tc.rule || (tc.expr != "" && first.Expression != tc.expr) {
				t.Errorf("first issue %+v, want rule %s at %q", first, tc.rule, tc.expr)
			}
			golden(t, "outcome/"+tc.name+".json", e.Outcome().JSON())
		})
	}
}

func hasIssue(issues []Issue, rule Rule, expr string) bool {
	for _, is := range issues {
		if is.Rule == rule && (expr == "" || is.Expression == expr) {
			return true
		}
	}
	return false
}

// nested returns n arrays nested in each other.
func nested(n int) string {
	return strings.Repeat("[", n) + strings.Repeat("]", n)
}
