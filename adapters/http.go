package adapters

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// maxAnswerBytes bounds what is read of a filler's answer.
const maxAnswerBytes = 10 << 20

// HTTPConfig configures an HTTP adapter.
type HTTPConfig struct {
	// URL is the filler's $process-message endpoint.
	URL string
	// Async adds async=true: the filler answers later, by POSTing to the
	// gateway.
	Async bool
	// Headers are sent with every request (e.g. an API key).
	Headers map[string]string
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// TLS configures HTTPS (nil: the system's roots).
	TLS *tls.Config
}

// HTTP POSTs messages to a filler's $process-message: 2xx delivers (a
// message Bundle in the body is a synchronous response), 408 and 429 are
// retried honouring Retry-After, other 4xx are permanent, 5xx, connection
// errors and timeouts are retried (503 honouring Retry-After).
type HTTP struct {
	cfg    HTTPConfig
	target string
	client *http.Client
}

var _ Adapter = (*HTTP)(nil)

// NewHTTP checks cfg and returns the adapter.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("adapters: http: %q is not an http(s) URL", cfg.URL)
	}
	if err := checkHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("adapters: http: %w", err)
	}
	if cfg.Async {
		q := u.Query()
		q.Set("async", "true")
		u.RawQuery = q.Encode()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = cfg.TLS
	return &HTTP{cfg: cfg, target: u.String(), client: &http.Client{Transport: transport, Timeout: cfg.Timeout}}, nil
}

// Deliver POSTs the message's original bytes.
func (h *HTTP) Deliver(ctx context.Context, m Message) (Result, error) {
	resp, body, err := post(ctx, h.client, h.target, m.Body, m, h.cfg.Headers)
	if err != nil {
		return Result{}, err
	}
	res := Result{Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		if isBundle(body) {
			res.Responses = [][]byte{body}
		}
		return res, nil
	case s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests:
		return res, fmt.Errorf("%w: filler %s answered %d", ErrRefused, m.Filler, s)
	default:
		return res, withRetryAfter(fmt.Errorf("filler %s answered %d", m.Filler, s), retryAfter(resp.Header, time.Now()))
	}
}

// post sends body to a filler as FHIR JSON of m's version, with the
// message identity as X-Correlation-ID, and reads the answer (bounded).
// Only a request that cannot be built or sent as built is a permanent
// failure: a URL the request cannot be made for, or a header value HTTP
// cannot carry (an identity holding a control character or a line break,
// say). Such a request is refused here, before anything is sent: net/http
// would refuse it too, but only inside Client.Do, with an error that is not
// told apart from a network failure.
func post(ctx context.Context, client *http.Client, url string, body []byte, m Message, headers map[string]string) (*http.Response, []byte, error) {
	if p := headerValueProblem(m.Identity); p != "" {
		return nil, nil, fmt.Errorf("%w: the message identity cannot travel in the X-Correlation-ID header of an HTTP request: %s", ErrPermanent, p)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the request to filler %s cannot be built: %w", ErrPermanent, m.Filler, err)
	}
	req.Header.Set("Content-Type", "application/fhir+json; fhirVersion="+m.FHIRVersion)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Correlation-ID", m.Identity)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	for name, values := range req.Header {
		for _, v := range values {
			if p := headerProblem(name, v); p != "" {
				return nil, nil, fmt.Errorf("%w: the %s header of the request to filler %s cannot be sent: %s", ErrPermanent, name, m.Filler, p)
			}
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("filler %s unreachable: %w", m.Filler, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("filler %s: reading the answer: %w", m.Filler, err)
	}
	return resp, answer, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isBundle reports whether body looks like a FHIR Bundle (the caller
// validates it properly).
func isBundle(body []byte) bool {
	return bytes.Contains(body, []byte(`"Bundle"`)) && bytes.Contains(body, []byte(`"resourceType"`))
}

// checkHeaders reports a configured header that no HTTP request can carry.
func checkHeaders(headers map[string]string) error {
	for name, v := range headers {
		if p := headerProblem(name, v); p != "" {
			return fmt.Errorf("header %q: %s", name, p)
		}
	}
	return nil
}

// headerProblem says why name: value cannot be an HTTP header field, or ""
// when it can. It applies net/http's own rules (httpguts), which Client.Do
// enforces.
func headerProblem(name, value string) string {
	if !httpguts.ValidHeaderFieldName(name) {
		return "the name is not an HTTP token"
	}
	return headerValueProblem(value)
}

// headerValueProblem says why value cannot be an HTTP header field value,
// or "" when it can: HTTP forbids control characters in it (NUL, CR, LF,
// DEL and the others), all but the horizontal tab. It names the offending
// byte and where it is, never the value.
func headerValueProblem(value string) string {
	if httpguts.ValidHeaderFieldValue(value) {
		return ""
	}
	for i := 0; i < len(value); i++ {
		if b := value[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return fmt.Sprintf("it holds the control character 0x%02X at byte %d, which an HTTP header value cannot carry", b, i)
		}
	}
	return "an HTTP header value cannot carry it"
}
