package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/adapters"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the gateway's configuration file (YAML). Every scalar key can be
// overridden by an environment variable FHIRGW_<PATH> (the key path upper-cased
// and joined by underscores, e.g. FHIRGW_HTTP_ADDR); string lists take a
// comma-separated value. RABBITMQ_URL sets amqp.url unless FHIRGW_AMQP_URL does.
// Unknown keys are an error.
type Config struct {
	HTTP                 HTTPConfig      `yaml:"http"`
	FHIRVersion          string          `yaml:"fhirVersion"`
	AMQP                 AMQPConfig      `yaml:"amqp"`
	Ledger               LedgerConfig    `yaml:"ledger"`
	ReliableCacheMinutes int             `yaml:"reliableCacheMinutes"`
	Routes               []RouteConfig   `yaml:"routes"`
	Fillers              []FillerConfig  `yaml:"fillers"`
	Callbacks            CallbacksConfig `yaml:"callbacks"`
	Auth                 AuthConfig      `yaml:"auth"`
	Partners             []PartnerConfig `yaml:"partners"`
	Outbox               OutboxConfig    `yaml:"outbox"`
	// Retention is how long a closed exchange is kept (default 720h); an
	// open one is never purged.
	Retention Duration `yaml:"retention"`
}

// HTTPConfig is the HTTP edge.
type HTTPConfig struct {
	Addr         string `yaml:"addr"`
	BasePath     string `yaml:"basePath"`
	MaxBodyBytes int    `yaml:"maxBodyBytes"`
	// PublicURL is the base URL the gateway is reached at, used as the source
	// endpoint of the messages it emits (default http://<addr><basePath>).
	PublicURL string `yaml:"publicUrl"`
}

// AMQPConfig is the broker connection.
type AMQPConfig struct {
	URL string `yaml:"url"`
	// Prefix starts the name of every exchange and queue the gateway
	// declares (default "fhirgw": fhirgw.route, fhirgw.filler.<id>, ...).
	Prefix string `yaml:"prefix"`
}

// vhost is the virtual host the URL names ("/" when it names none).
func (a AMQPConfig) vhost() string {
	u, err := url.Parse(a.URL)
	if err != nil || u.Path == "" || u.Path == "/" {
		return "/"
	}
	v, err := url.PathUnescape(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return "/"
	}
	return v
}

// LedgerConfig selects the durable ledger.
type LedgerConfig struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
}

// RouteConfig sends messages of one event to fillers. The first match wins.
type RouteConfig struct {
	Event       string   `yaml:"event"`
	Fillers     []string `yaml:"fillers"`
	SyncTimeout Duration `yaml:"syncTimeout"`
	AckDeadline Duration `yaml:"ackDeadline"`
	CancelEvent string   `yaml:"cancelEvent"`
}

// FillerConfig is a system that fulfils messages.
type FillerConfig struct {
	ID      string `yaml:"id"`
	Adapter string `yaml:"adapter"`
	// URL, Async, Headers and Timeout configure the http adapter.
	URL     string            `yaml:"url"`
	Async   bool              `yaml:"async"`
	Headers map[string]string `yaml:"headers"`
	Timeout Duration          `yaml:"timeout"`
	// Retry bounds the retries of a delivery before it is parked.
	Retry RetryConfig `yaml:"retry"`
	// Concurrency is how many messages the http adapter delivers at once
	// (default 1: in order).
	Concurrency int `yaml:"concurrency"`
}

// Spec is the filler's configuration as its adapter kind reads it.
func (f FillerConfig) Spec() adapters.Spec {
	return adapters.Spec{URL: f.URL, Async: f.Async, Headers: f.Headers, Timeout: f.Timeout.Std()}
}

// RetryConfig bounds how deliveries to a filler are retried.
type RetryConfig struct {
	MaxAttempts    int      `yaml:"maxAttempts"`
	MaxAge         Duration `yaml:"maxAge"`
	InitialBackoff Duration `yaml:"initialBackoff"`
	MaxBackoff     Duration `yaml:"maxBackoff"`
}

// CallbacksConfig limits where answers may be pushed and how they are.
type CallbacksConfig struct {
	// Allow are the URL prefixes a callback must be under.
	Allow []string `yaml:"allow"`
	// Retry bounds how long an answer is retried before it is parked
	// (defaults 8 attempts, 1h, backoff 1s to 1m).
	Retry RetryConfig `yaml:"retry"`
	// PerOrigin is how many answers are pushed to one placer origin
	// (scheme, host, port) at once (default 8).
	PerOrigin int `yaml:"perOrigin"`
}

// CallbackAllowed reports whether a callback URL, normalised by
// ack.CallbackURL, is under one of callbacks.allow: the pusher's
// ack.PusherConfig.Allowed. A partner's own callbacks prefixes narrow
// only what its response-url may name at intake (a callback does not
// record its placer); every callback must be under callbacks.allow.
func (c Config) CallbackAllowed(u *url.URL) bool {
	if u == nil {
		return false
	}
	target := u.String()
	for _, p := range c.Callbacks.Allow {
		if ack.UnderPrefix(target, p) {
			return true
		}
	}
	return false
}

// AuthConfig switches authentication.
type AuthConfig struct {
	Disabled bool `yaml:"disabled"`
}

// PartnerConfig is a partner organization.
type PartnerConfig struct {
	ID           string    `yaml:"id"`
	AMQPUser     string    `yaml:"amqpUser"`
	APIKeySHA256 string    `yaml:"apiKeySHA256"`
	JWT          JWTConfig `yaml:"jwt"`
	Events       []string  `yaml:"events"`
	Callbacks    []string  `yaml:"callbacks"`
	Fillers      []string  `yaml:"fillers"`
}

// JWTConfig verifies a partner's bearer tokens.
type JWTConfig struct {
	Issuer   string `yaml:"issuer"`
	JWKSURL  string `yaml:"jwksUrl"`
	Audience string `yaml:"audience"`
	// Subject, when set, is the token's sub claim (or client_id, when it has
	// no sub) that tells this partner apart from others of the issuer.
	Subject string `yaml:"subject"`
}

// OutboxConfig bounds what the gateway holds for a broker that is away.
type OutboxConfig struct {
	// MaxBacklog is how many accepted messages may wait for the broker before
	// new ones get 503 + Retry-After (default 10000).
	MaxBacklog int `yaml:"maxBacklog"`
	// RetryAfter is the Retry-After advertised with such a 503 (default 5s).
	RetryAfter Duration `yaml:"retryAfter"`
}

// Duration is a time.Duration written as "10s", "5m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return d.set(n.Value)
}

func (d *Duration) set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use forms like 10s or 5m)", s)
	}
	*d = Duration(v)
	return nil
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// DefaultConfig is the configuration before the file and environment apply.
func DefaultConfig() Config {
	return Config{
		HTTP:                 HTTPConfig{Addr: ":8080", BasePath: "/fhir", MaxBodyBytes: 10 << 20},
		FHIRVersion:          "4.0",
		AMQP:                 AMQPConfig{URL: "amqp://guest:guest@127.0.0.1:5672/", Prefix: "fhirgw"},
		Ledger:               LedgerConfig{Driver: "sqlite", DSN: "./data/fhirgw.db"},
		ReliableCacheMinutes: 1440,
		Callbacks:            CallbacksConfig{PerOrigin: 8, Retry: defaultCallbackRetry},
		Outbox:               OutboxConfig{MaxBacklog: 10000, RetryAfter: Duration(5 * time.Second)},
		Retention:            Duration(720 * time.Hour),
	}
}

// defaultCallbackRetry is callbacks.retry when the file does not say.
var defaultCallbackRetry = RetryConfig{MaxAttempts: 8, MaxAge: Duration(time.Hour),
	InitialBackoff: Duration(time.Second), MaxBackoff: Duration(time.Minute)}

// ErrConfig marks a configuration the gateway cannot start with (exit 2).
var ErrConfig = errors.New("invalid configuration")

// LoadConfig reads the YAML file at path over the defaults, applies the
// environment (getenv, normally os.Getenv) and validates the result.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file keeps the defaults
		return cfg, fmt.Errorf("%w: %s: %s", ErrConfig, path, yamlError(err))
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), "FHIRGW", getenv); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if getenv("FHIRGW_AMQP_URL") == "" {
		if url := getenv("RABBITMQ_URL"); url != "" {
			cfg.AMQP.URL = url
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// yamlError rewords the decoder's unknown-field error to name the key.
func yamlError(err error) string {
	msg := err.Error()
	if m := unknownField.FindAllStringSubmatch(msg, -1); m != nil {
		var keys []string
		for _, k := range m {
			keys = append(keys, fmt.Sprintf("%q (line %s)", k[2], k[1]))
		}
		return "unknown key " + strings.Join(keys, ", ")
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

// applyEnv overrides the scalar and string-list fields of v from
// PREFIX_<KEY> variables.
func applyEnv(v reflect.Value, prefix string, getenv func(string) string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := applyEnv(fv, name, getenv); err != nil {
				return err
			}
			continue
		}
		s := getenv(name)
		if s == "" {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	if d, ok := v.Addr().Interface().(*Duration); ok {
		return d.set(s)
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Map:
		return errors.New("cannot be set from the environment; use the configuration file")
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return errors.New("cannot be set from the environment; use the configuration file")
		}
		parts := strings.Split(s, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return errors.New("cannot be set from the environment")
	}
	return nil
}
