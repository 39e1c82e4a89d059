package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fhirgw/fhirgw/envelope"
	"go.uber.org/zap"
)

// fileExtensionURL marks, in `validate --format json` output, the file an
// OperationOutcome is about.
const fileExtensionURL = "https://fhirgw.example/fhir/StructureDefinition/source-file"

// runValidate is `fhirgw validate`: one verdict per file, exit 0 when all are
// valid, 1 when any is invalid, 2 on usage errors or unreadable files.
func runValidate(ctx context.Context, env *environment, args []string) int {
	fset := flag.NewFlagSet("validate", flag.ContinueOnError)
	fset.SetOutput(env.stderr)
	versionFlag := fset.String("fhir-version", "auto", "FHIR version to validate as: 4.0, 5.0, or auto (detect from the MessageHeader, R4 when undecided)")
	format := fset.String("format", "text", "output: text (OK/INVALID lines) or json (one OperationOutcome per file, one per line)")
	maxBytes := fset.Int("max-bytes", envelope.DefaultMaxBytes, "largest message accepted, in bytes")
	fset.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: fhirgw validate [--fhir-version 4.0|5.0|auto] [--format text|json] FILE|DIR...")
		fset.PrintDefaults()
	}
	paths, err := parseInterleaved(fset, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage // the flag package has printed the problem
	}
	version, err := envelope.ParseVersion(*versionFlag)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw validate: %v.\n", err)
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(env.stderr, "fhirgw validate: unknown format %q (use text or json).\n", *format)
		return exitUsage
	}
	if len(paths) == 0 {
		fmt.Fprintln(env.stderr, "fhirgw validate: name at least one file or directory.")
		return exitUsage
	}
	level := env.logLevel
	if level == "" {
		level = "warn"
	}
	log, err := newLogger(env.stderr, level)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw: %v.\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	files, err := messageFiles(paths)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw validate: %v.\n", err)
		return exitUsage
	}

	parser := envelope.NewParser(envelope.Options{Limits: envelope.Limits{MaxBytes: *maxBytes}})
	code := exitOK
	for _, file := range files {
		if ctx.Err() != nil {
			fmt.Fprintln(env.stderr, "fhirgw validate: interrupted.")
			return exitCheckFailed
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(env.stderr, "fhirgw validate: cannot read %s: %v.\n", file, errors.Unwrap(err))
			code = exitUsage
			continue
		}
		msg, err := parser.Parse(raw, version)
		var rejected *envelope.Error
		if err != nil && !errors.As(err, &rejected) {
			fmt.Fprintf(env.stderr, "fhirgw validate: %s: %v.\n", file, err)
			code = exitUsage
			continue
		}
		if rejected != nil {
			log.Debug("message invalid", zap.String("file", file), zap.String("rule", string(rejected.Issues[0].Rule)))
			if code == exitOK {
				code = exitCheckFailed
			}
		} else {
			log.Debug("message valid", zap.String("file", file), zap.String("identity", msg.Identity.Key()),
				zap.String("event", msg.Header.Event.Key()), zap.String("fhirVersion", msg.Version.String()))
		}
		if *format == "json" {
			fmt.Fprintf(env.stdout, "%s\n", fileOutcome(file, msg, rejected).JSON())
			continue
		}
		if rejected != nil {
			fmt.Fprintf(env.stdout, "INVALID %s: %s\n", file, rejected.Reason())
		} else {
			fmt.Fprintf(env.stdout, "OK %s\n", file)
		}
	}
	return code
}

// fileOutcome is the OperationOutcome printed for one file: the rejection's
// issues, or for a valid message a summary followed by its warnings.
func fileOutcome(file string, msg *envelope.Message, rejected *envelope.Error) envelope.OperationOutcome {
	var oo envelope.OperationOutcome
	if rejected != nil {
		oo = rejected.Outcome()
	} else {
		summary := envelope.Issue{
			Severity: envelope.SeverityInformation, Code: envelope.IssueInformational,
			Diagnostics: fmt.Sprintf("valid FHIR %s message: identity %s '%s', event '%s'",
				msg.Version.Name(), msg.Identity.Source, msg.Identity.Key(), msg.Header.Event),
		}
		oo = envelope.NewOutcome(append([]envelope.Issue{summary}, msg.Issues...)...)
	}
	oo.Extension = []envelope.Extension{{URL: fileExtensionURL, ValueString: file}}
	return oo
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseInterleaved(fset *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// messageFiles expands directories into the .json files below them, in
// lexical order; files are taken as named.
func messageFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, errors.Unwrap(err))
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no .json files found in " + strings.Join(paths, ", "))
	}
	return files, nil
}
