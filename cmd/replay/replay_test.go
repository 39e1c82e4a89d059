package replay_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/cmd/replay"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
	"github.com/gin-gonic/gin"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	brokertest.Main(m)
}

// demoStack runs the gateway with the configuration `make run` uses and the
// sample lab filler that answers ok and reports progress, as devstack does.
func demoStack(t *testing.T) (*gatewaytest.Stack, *samplefiller.Filler) {
	t.Helper()
	cfg, err := gateway.LoadConfig(filepath.Join("..", "..", "testing", "demo", "fhirgw.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	s := gatewaytest.Start(t, cfg)
	lab := s.RunFiller(t, samplefiller.Config{Queue: s.Topology.FillerQueue("lab"), Progress: true})
	return s, lab
}

func projectPlan(t *testing.T) replay.Plan {
	t.Helper()
	m, err := replay.LoadManifest(filepath.Join("..", "..", "testing", "fixtures", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := m.Plan("")
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// newTarget connects to a target, closed when the test ends.
func newTarget(t *testing.T, url string, opts replay.TargetOptions) replay.Target {
	t.Helper()
	target, err := replay.NewTarget(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	return target
}

func run(t *testing.T, target replay.Target, plan replay.Plan, fresh *replay.Freshener, concurrency int) []replay.Result {
	t.Helper()
	rn := &replay.Runner{Target: target, Concurrency: concurrency, Fresh: fresh, Options: replay.TargetOptions{Timeout: 30 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return rn.Run(ctx, plan)
}

func requirePass(t *testing.T, results []replay.Result) {
	t.Helper()
	var table strings.Builder
	s := replay.Summarize(results, 0)
	_ = replay.WriteTable(&table, results, s)
	if !s.OK() || s.Unchecked != 0 {
		t.Fatalf("not every verdict passed:\n%s", table.String())
	}
	t.Logf("\n%s", table.String())
}

// The project's manifest passes over HTTP and over AMQP, one message at a
// time and eight at once, each run with fresh identities.
func TestProjectManifestPasses(t *testing.T) {
	s, lab := demoStack(t)
	plan := projectPlan(t)
	http := newTarget(t, s.Base, replay.TargetOptions{})
	amqp := newTarget(t, s.Config.AMQP.URL, replay.TargetOptions{Exchange: s.Topology.IngressExchange()})
	runs := 0
	for _, tc := range []struct {
		name        string
		target      replay.Target
		concurrency int
	}{{"http", http, 1}, {"http concurrent", http, 8}, {"amqp", amqp, 1}, {"amqp concurrent", amqp, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			requirePass(t, run(t, tc.target, plan, replay.NewFreshener(nil), tc.concurrency))
		})
		runs++
	}
	// Each run routes its three requests once; duplicates are not routed.
	if !wait.For(10*time.Second, func() bool { return lab.Received() == 3*runs }) {
		t.Errorf("the lab received %d messages, want %d", lab.Received(), 3*runs)
	}
}

// Replayed again without fresh ids, every message the gateway took the
// first time is answered as a duplicate, with its first answer, and nothing
// is routed twice.
func TestASecondReplayIsAllDuplicates(t *testing.T) {
	s, lab := demoStack(t)
	plan := projectPlan(t)
	target := newTarget(t, s.Base, replay.TargetOptions{})
	first := run(t, target, plan, nil, 1)
	requirePass(t, first)
	if !wait.For(10*time.Second, func() bool { return lab.Received() == 3 }) {
		t.Fatalf("the lab received %d messages after the first replay, want 3", lab.Received())
	}
	second := run(t, target, plan, nil, 1)
	requirePass(t, second)
	requireDuplicates(t, first, second)
	time.Sleep(time.Second) // room for a wrong second delivery to show
	if lab.Received() != 3 {
		t.Errorf("the lab received %d messages after the second replay, want 3", lab.Received())
	}
}

// The public fixtures get what their manifest (derived from SOURCES.md)
// says, when they are present beside the project.
func TestPublicFixturesManifest(t *testing.T) {
	dir := os.Getenv("FHIRGW_PUBLIC_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures", "public")
	}
	if _, err := os.Stat(filepath.Join(dir, "SOURCES.md")); err != nil {
		t.Skipf("public fixtures not found at %s (set FHIRGW_PUBLIC_FIXTURES): %v", dir, err)
	}
	cfg, err := gateway.LoadConfig(filepath.Join("..", "..", "testing", "public-fixtures", "fhirgw.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	s := gatewaytest.Start(t, cfg)
	m, err := replay.LoadManifest(filepath.Join("..", "..", "testing", "public-fixtures", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := m.Plan(dir)
	if err != nil {
		t.Fatal(err)
	}
	target := newTarget(t, s.Base, replay.TargetOptions{})
	first := run(t, target, plan, nil, 1)
	requirePass(t, first)
	second := run(t, target, plan, nil, 1)
	requirePass(t, second)
	requireDuplicates(t, first, second)
}

// requireDuplicates checks that every message the gateway took the first
// time (custody, or a response kept) was answered as a duplicate the second
// time, with the same status and location; and no rejection was.
func requireDuplicates(t *testing.T, first, second []replay.Result) {
	t.Helper()
	dups := 0
	for i, r := range second {
		kept := first[i].Status == 422 && len(first[i].Issues) > 0 && first[i].Issues[0] == "not-found" // an unmatched response
		taken := first[i].Status < 400 || kept
		if r.Duplicate != taken || r.Status != first[i].Status || r.Location != first[i].Location {
			t.Errorf("%s: second answer %d (duplicate %t, %s), first %d (%s)", r.Name, r.Status, r.Duplicate, r.Location, first[i].Status, first[i].Location)
		}
		if r.Duplicate {
			dups++
		}
	}
	t.Logf("second replay: %d of %d answered as duplicates; the others were rejected both times", dups, len(second))
}
