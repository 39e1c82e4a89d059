package gateway

import (
	"context"
	"flag"
	"github.com/fhirgw/fhirgw/ack"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/ack/ledger"
	"github.com/fhirgw/fhirgw/router"
	goldenfile "github.com/fhirgw/fhirgw/testing/golden"
	"github.com/fhirgw/fhirgw/testing/ledgertest"
	"github.com/gin-gonic/gin"
)

var updateRender = flag.Bool("update-render", false, "rewrite the rendering golden files")

func renderGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.JSON(t, filepath.Join("testdata", "golden", "render", name), got, *updateRender)
}

func TestRenderTask(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m := &ledger.Message{
		TaskID: "task-1", Identity: "4b0c2d1e-7f6a-4e3b-9c8d-1a2b3c4d5e01", FHIRVersion: "4.0",
		Event: "coding:https://fhirgw.example/fhir/message-events|lab-order", Fillers: []string{"lab"},
		Status: "in-progress", BusinessStatus: "specimen received", ReceivedAt: at, UpdatedAt: at.Add(time.Minute + time.Microsecond), RoutedAt: at.Add(time.Second), Version: 4, Outputs: 2,
	}
	responses := []ledger.Response{{BundleID: "b-1", Code: "ok"}, {BundleID: "b-2", Code: "progress"}}
	renderGolden(t, "task-in-progress.json", renderTask(m, responses))
	m.Status, m.BusinessStatus, m.RoutedAt, m.Version, m.UpdatedAt = "requested", "queued for lab", time.Time{}, 1, at
	renderGolden(t, "task-queued.json", renderTask(m, nil))
}

// idleRelay is a relay for rendering tests that route nothing.
type idleRelay struct{}

func (idleRelay) Offer(...router.Delivery) {}
func (idleRelay) Ready() bool              { return true }

func TestRenderCapabilityStatement(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	cfg := DefaultConfig()
	cfg.HTTP.PublicURL = "https://gateway.example/fhir"
	cfg.Fillers = []FillerConfig{{ID: "lab", Adapter: "amqp"}}
	cfg.Routes = []RouteConfig{{Event: "https://fhirgw.example/fhir/message-events|lab-order", Fillers: []string{"lab"}}}
	table, err := cfg.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.CoreConfig("test")
	if err != nil {
		t.Fatal(err)
	}
	cc.Ledger, cc.Relay = ledgertest.Open(t), idleRelay{}
	core, err := ack.NewCore(cc)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: cfg, Core: core, Routes: table, Relay: idleRelay{}, Version: "test",
		Now: func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"4.0", "5.0"} {
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/fhir/metadata?fhirVersion="+v, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", v, rec.Code)
		}
		renderGolden(t, "capabilitystatement-"+v+".json", rec.Body.Bytes())
	}
}
