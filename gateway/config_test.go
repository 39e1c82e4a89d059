package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fhirgw.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

const designConfig = `
http:
  addr: ":8080"
  basePath: /fhir
  maxBodyBytes: 10485760
fhirVersion: "4.0"
amqp:
  url: amqp://guest:guest@127.0.0.1:5672/
ledger:
  driver: sqlite
  dsn: ./data/fhirgw.db
reliableCacheMinutes: 1440
routes:
  - event: "https://fhirgw.example/fhir/message-events|lab-order"
    fillers: [lab]
    syncTimeout: 10s
    ackDeadline: 5m
    cancelEvent: "https://fhirgw.example/fhir/message-events|lab-order-cancel"
fillers:
  - id: lab
    adapter: http
    url: http://127.0.0.1:9090/fhir/$process-message
  - id: partner-x
    adapter: amqp
callbacks:
  allow: ["https://ehr.stmarys.example/fhir/"]
auth:
  disabled: false
partners:
  - id: st-marys
    amqpUser: st-marys
    apiKeySHA256: "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    events: ["https://fhirgw.example/fhir/message-events|lab-order"]
    callbacks: ["https://ehr.stmarys.example/fhir/"]
`

func TestLoadConfigReadsTheDesignExample(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, designConfig), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if r.SyncTimeout.Std() != 10*time.Second || r.AckDeadline.Std() != 5*time.Minute || r.Fillers[0] != "lab" {
		t.Errorf("route %+v", r)
	}
	if cfg.Fillers[1].Adapter != "amqp" || cfg.Partners[0].AMQPUser != "st-marys" || cfg.Callbacks.Allow[0] != "https://ehr.stmarys.example/fhir/" {
		t.Errorf("config %+v", cfg)
	}
	if cfg.Outbox.MaxBacklog != 10000 {
		t.Errorf("outbox default %+v", cfg.Outbox)
	}
	if c := cfg.Callbacks; c.PerOrigin != 8 || c.Retry.MaxAttempts != 8 || c.Retry.MaxAge.Std() != time.Hour ||
		c.Retry.InitialBackoff.Std() != time.Second || c.Retry.MaxBackoff.Std() != time.Minute {
		t.Errorf("callbacks defaults %+v", c)
	}
}

func TestLoadConfigReadsTheCallbackKeys(t *testing.T) {
	body := designConfig + "outbox:\n  maxBacklog: 5\n"
	body = strings.Replace(body, `  allow: ["https://ehr.stmarys.example/fhir/"]`, `  allow: ["https://ehr.stmarys.example/fhir/"]
  perOrigin: 4
  retry:
    maxAttempts: 3
    maxAge: 10m
    initialBackoff: 2s
    maxBackoff: 30s`, 1)
	cfg, err := LoadConfig(writeConfig(t, body), env(map[string]string{"FHIRGW_CALLBACKS_RETRY_MAXATTEMPTS": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Callbacks; c.PerOrigin != 4 || c.Retry.MaxAttempts != 5 || c.Retry.MaxAge.Std() != 10*time.Minute ||
		c.Retry.InitialBackoff.Std() != 2*time.Second || c.Retry.MaxBackoff.Std() != 30*time.Second {
		t.Errorf("callbacks %+v", c)
	}
}

func TestLoadConfigEnvironmentOverrides(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, designConfig), env(map[string]string{
		"FHIRGW_HTTP_ADDR":             "127.0.0.1:9999",
		"FHIRGW_HTTP_MAXBODYBYTES":     "2048",
		"FHIRGW_FHIRVERSION":           "5.0",
		"FHIRGW_AUTH_DISABLED":         "true",
		"FHIRGW_CALLBACKS_ALLOW":       "https://a.example/, https://b.example/",
		"FHIRGW_OUTBOX_RETRYAFTER":     "30s",
		"RABBITMQ_URL":                 "amqp://guest:guest@127.0.0.1:5673/",
		"FHIRGW_RELIABLECACHEMINUTES":  "15",
		"FHIRGW_LEDGER_DSN":            "/tmp/x.db",
		"FHIRGW_UNRELATED_BUT_HARMLES": "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9999" || cfg.HTTP.MaxBodyBytes != 2048 || cfg.FHIRVersion != "5.0" || !cfg.Auth.Disabled ||
		len(cfg.Callbacks.Allow) != 2 || cfg.Callbacks.Allow[1] != "https://b.example/" || cfg.Outbox.RetryAfter.Std() != 30*time.Second ||
		cfg.AMQP.URL != "amqp://guest:guest@127.0.0.1:5673/" || cfg.ReliableCacheMinutes != 15 || cfg.Ledger.DSN != "/tmp/x.db" {
		t.Errorf("config %+v", cfg)
	}
	cfg, err = LoadConfig(writeConfig(t, designConfig), env(map[string]string{
		"FHIRGW_AMQP_URL": "amqp://a:b@127.0.0.1:1/", "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5673/",
	}))
	if err != nil || cfg.AMQP.URL != "amqp://a:b@127.0.0.1:1/" {
		t.Errorf("FHIRGW_AMQP_URL must win over RABBITMQ_URL: %v %v", cfg.AMQP.URL, err)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	cases := []struct {
		name, body string
		env        map[string]string
		want       string
	}{
		{"unknown key", "http:\n  adress: \":1\"\n", nil, `unknown key "adress" (line 2)`},
		{"unknown top-level key", "rout: []\n", nil, `unknown key "rout"`},
		{"bad duration", "routes:\n  - event: x\n    fillers: [a]\n    syncTimeout: soon\nfillers:\n  - {id: a, adapter: amqp}\n", nil, "not a duration"},
		{"route to unknown filler", "routes:\n  - event: x\n    fillers: [nope]\n", nil, `names filler "nope"`},
		{"route without fillers", "routes:\n  - event: x\n", nil, "names no fillers"},
		{"duplicate filler", "fillers:\n  - {id: a, adapter: amqp}\n  - {id: a, adapter: amqp}\n", nil, "used twice"},
		{"http filler without url", "fillers:\n  - {id: a, adapter: http}\n", nil, "needs an absolute url"},
		{"unknown adapter", "fillers:\n  - {id: a, adapter: fax}\n", nil, `adapter "fax" is unknown`},
		{"rest filler without url", "fillers:\n  - {id: a, adapter: rest}\n", nil, "adapter rest needs an absolute url"},
		{"filler id with a dot", "fillers:\n  - {id: a.b, adapter: amqp}\n", nil, "may not contain"},
		{"bad version", "fhirVersion: \"3.0\"\n", nil, "fhirVersion"},
		{"postgres", "ledger:\n  driver: postgres\n  dsn: x\n", nil, "postgres is not available"},
		{"bad base path", "http:\n  basePath: fhir\n", nil, "must start with /"},
		{"bad env int", "", map[string]string{"FHIRGW_HTTP_MAXBODYBYTES": "lots"}, "FHIRGW_HTTP_MAXBODYBYTES"},
		{"env on a list of objects", "", map[string]string{"FHIRGW_ROUTES": "x"}, "FHIRGW_ROUTES"},
		{"bad callback prefix", "callbacks:\n  allow: [\"/relative\"]\n", nil, "not an absolute URL prefix"},
		{"bad key hash", "partners:\n  - {id: p, apiKeySHA256: abc}\n", nil, "64 hex digits"},
		{"incomplete jwt partner", "partners:\n  - {id: p, jwt: {issuer: https://idp.example}}\n", nil, "jwt needs issuer, jwksUrl"},
		{"partner without credentials", "partners:\n  - {id: p}\n", nil, "has no credentials"},
		{"callback retries without end", "callbacks:\n  retry: {maxAttempts: 0}\n", nil, "callbacks.retry.maxAttempts, .maxAge"},
		{"callback age zero", "", map[string]string{"FHIRGW_CALLBACKS_RETRY_MAXAGE": "0s"}, "must be positive"},
		{"callback backoff upside down", "callbacks:\n  retry: {initialBackoff: 2m, maxBackoff: 1m}\n", nil, "must not be under callbacks.retry.initialBackoff"},
		{"callbacks per origin zero", "callbacks:\n  perOrigin: 0\n", nil, "callbacks.perOrigin must be between 1 and 64"},
		{"callbacks per origin too many", "callbacks:\n  perOrigin: 65\n", nil, "callbacks.perOrigin must be between 1 and 64"},
		{"unknown callbacks key", "callbacks:\n  retries: {}\n", nil, `unknown key "retries"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body), env(tc.env))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"), env(nil)); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func TestEmptyConfigIsTheDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, ""), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.HTTP.BasePath != "/fhir" || cfg.Ledger.Driver != "sqlite" || cfg.ReliableCacheMinutes != 1440 {
		t.Errorf("defaults %+v", cfg)
	}
}
