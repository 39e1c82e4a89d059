package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fhirgw/fhirgw/gateway"
)

// httpTarget POSTs to [base]/$process-message.
type httpTarget struct {
	base   string
	client *client
}

func newHTTPTarget(base string, opts TargetOptions) *httpTarget {
	return &httpTarget{base: strings.TrimSuffix(base, "/"), client: newClient(opts)}
}

// Send POSTs the message.
func (t *httpTarget) Send(ctx context.Context, m Outgoing) (Exchange, error) {
	url := t.base + "/$process-message"
	if m.Async {
		url += "?async=true"
	}
	header := http.Header{"Content-Type": {contentType(m.FHIRVersion)}}
	resp, body, err := t.client.do(ctx, http.MethodPost, url, m.Body, header)
	if err != nil {
		return Exchange{}, err
	}
	return Exchange{Answer: Answer{Status: resp.StatusCode, Body: body, Location: resp.Header.Get("Content-Location"),
		Duplicate: resp.Header.Get(gateway.HeaderDuplicate) == "true"}}, nil
}

// Close does nothing: HTTP connections are pooled per process.
func (t *httpTarget) Close() error { t.client.http.CloseIdleConnections(); return nil }

func contentType(version string) string {
	if version == "" {
		return "application/fhir+json"
	}
	return "application/fhir+json; fhirVersion=" + version
}

// client is the HTTP client of a run: its API key on every request.
type client struct {
	http   *http.Client
	apiKey string
}

func newClient(opts TargetOptions) *client {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	return &client{http: &http.Client{Timeout: timeout}, apiKey: opts.APIKey}
}

func (c *client) do(ctx context.Context, method, url string, body []byte, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/fhir+json")
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// task is what the replay reads of the gateway's Task.
type task struct {
	Status string
	// Response is the first response's code ("" before one arrives).
	Response string
	Fillers  []string
}

// readTask reads the Task at an absolute URL.
func (c *client) readTask(ctx context.Context, location string) (task, error) {
	resp, body, err := c.do(ctx, http.MethodGet, location, nil, nil)
	if err != nil {
		return task{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return task{}, fmt.Errorf("GET %s: %d", location, resp.StatusCode)
	}
	var t struct {
		ResourceType string `json:"resourceType"`
		Status       string `json:"status"`
		Restriction  struct {
			Recipient []struct {
				Identifier struct {
					System string `json:"system"`
					Value  string `json:"value"`
				} `json:"identifier"`
			} `json:"recipient"`
		} `json:"restriction"`
		Output []struct {
			Type struct {
				Text string `json:"text"`
			} `json:"type"`
		} `json:"output"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.ResourceType != "Task" {
		return task{}, fmt.Errorf("GET %s: not a Task", location)
	}
	out := task{Status: t.Status}
	for _, r := range t.Restriction.Recipient {
		if r.Identifier.System == gateway.FillerSystem {
			out.Fillers = append(out.Fillers, r.Identifier.Value)
		}
	}
	for _, o := range t.Output {
		if code, ok := strings.CutPrefix(o.Type.Text, "response "); ok {
			out.Response = code
			break
		}
	}
	return out, nil
}
