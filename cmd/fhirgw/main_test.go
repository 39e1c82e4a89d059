package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "github.com/fhirgw/fhirgw/testing/golden"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const fixtures = "../../testing/fixtures"

// fhirgw runs the command line in-process.
func fhirgw(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateGolden(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		golden string
	}{
		{"valid fixtures", []string{"validate", fixtures + "/r4", fixtures + "/r5"}, exitOK, "validate-valid.txt"},
		{"invalid fixtures", []string{"validate", fixtures + "/invalid"}, exitCheckFailed, "validate-invalid.txt"},
		{"json", []string{"validate", "--format", "json", fixtures + "/r5/lab-order.json", fixtures + "/invalid/no-event.json"}, exitCheckFailed, "validate-json.txt"},
		{"flags after files", []string{"validate", fixtures + "/r4/lab-order.json", "--fhir-version", "5.0"}, exitCheckFailed, "validate-as-r5.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := fhirgw(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if stderr != "" {
				t.Errorf("unexpected stderr: %s", stderr)
			}
			golden(t, tc.golden, stdout)
		})
	}
}

func TestValidateJSONIsOneOutcomePerFile(t *testing.T) {
	_, stdout, _ := fhirgw("validate", "--format=json", fixtures+"/invalid")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	files, _ := filepath.Glob(fixtures + "/invalid/*.json")
	if len(lines) != len(files) {
		t.Fatalf("%d lines for %d files", len(lines), len(files))
	}
	for i, line := range lines {
		var oo struct {
			ResourceType string
			Extension    []struct{ ValueString string }
			Issue        []struct{ Severity string }
		}
		if err := json.Unmarshal([]byte(line), &oo); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if oo.ResourceType != "OperationOutcome" || len(oo.Extension) != 1 || oo.Extension[0].ValueString != files[i] || oo.Issue[0].Severity != "error" {
			t.Errorf("line %d: %s", i, line)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", nil, exitUsage, "Usage:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown option", []string{"--nope", "validate"}, exitUsage, "unknown option --nope"},
		{"bad log level", []string{"--log-level", "loud", "validate", fixtures + "/r4"}, exitUsage, "log level"},
		{"no files", []string{"validate"}, exitUsage, "name at least one file"},
		{"bad format", []string{"validate", "--format", "xml", fixtures}, exitUsage, `unknown format "xml"`},
		{"bad version", []string{"validate", "--fhir-version", "3.0", fixtures}, exitUsage, "unsupported FHIR version"},
		{"missing file", []string{"validate", fixtures + "/nope.json"}, exitUsage, "cannot read"},
		{"empty dir", []string{"validate", t.TempDir()}, exitUsage, "no .json files"},
		{"bad flag", []string{"validate", "--colour", fixtures}, exitUsage, "flag provided but not defined"},
		{"help", []string{"help"}, exitOK, ""},
		{"validate help", []string{"validate", "-h"}, exitOK, "Usage: fhirgw validate"},
		{"replay without target", []string{"replay", fixtures + "/r4"}, exitUsage, "--target URL"},
		{"replay without files", []string{"replay", "--target", "http://127.0.0.1:1/fhir"}, exitUsage, "name the files or directories"},
		{"replay bad concurrency", []string{"replay", "--target", "http://127.0.0.1:1/fhir", "--concurrency", "0", fixtures + "/r4"}, exitUsage, "--concurrency"},
		{"replay bad manifest", []string{"replay", "--target", "http://127.0.0.1:1/fhir", "--manifest", fixtures + "/r4/lab-order.json"}, exitUsage, "manifest"},
		{"replay root without manifest", []string{"replay", "--target", "http://127.0.0.1:1/fhir", "--root", fixtures, fixtures + "/r4"}, exitUsage, "--root needs a --manifest"},
		{"replay bad target", []string{"replay", "--target", "ftp://x", fixtures + "/r4"}, exitCheckFailed, "use an http(s):// FHIR base"},
		{"replay unreachable", []string{"replay", "--target", "http://127.0.0.1:1/fhir", fixtures + "/r4/lab-order.json"}, exitCheckFailed, ""},
		{"replay help", []string{"replay", "-h"}, exitOK, "Usage: fhirgw replay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := fhirgw(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

func TestValidateLogsWithoutBodies(t *testing.T) {
	code, _, stderr := fhirgw("--log-level=debug", "validate", fixtures+"/r4/lab-order.json", fixtures+"/invalid/no-event.json")
	if code != exitCheckFailed {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`"msg":"message valid"`, `"event":"coding:https://fhirgw.example/fhir/message-events|lab-order"`, `"rule":"msh-event"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, stderr)
		}
	}
	for _, patientData := range []string{"Testpatient", "TEST-000123", "1970-01-01"} {
		if strings.Contains(stderr, patientData) {
			t.Errorf("log carries patient data %q", patientData)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Bytes(t, filepath.Join("testdata", name), []byte(got), *update)
}

func TestPartnerUserGolden(t *testing.T) {
	cases := []struct {
		name, partner, golden string
	}{
		{"placer", "st-marys", "partner-user-placer.txt"},
		{"filler, quoted for the shell", "city-lab", "partner-user-filler.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := fhirgw("partner-user", "--config", "testdata/partner.yaml", "--partner", tc.partner, "--password", "pw")
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, tc.golden, stdout)
		})
	}
	for _, args := range [][]string{
		{"partner-user", "--config", "testdata/partner.yaml"},
		{"partner-user", "--config", "testdata/partner.yaml", "--partner", "nobody"},
		{"partner-user", "--config", "testdata/partner.yaml", "--partner", "web-only"},
	} {
		if code, _, stderr := fhirgw(args...); code != exitUsage || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
