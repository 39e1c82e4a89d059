package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fhirgw/fhirgw/cmd/replay"
)

// runReplay is `fhirgw replay`: it sends message fixtures to a running
// gateway and checks what comes back. Exit 0 when every expectation holds,
// 1 when one does not (or a message could not be sent), 2 on usage errors.
func runReplay(ctx context.Context, env *environment, args []string) int {
	fset := flag.NewFlagSet("replay", flag.ContinueOnError)
	fset.SetOutput(env.stderr)
	target := fset.String("target", "", "the gateway: its FHIR base (http://host:8080/fhir) or its broker (amqp://user:pass@host:5672/)")
	manifestPath := fset.String("manifest", "", "the expectations, and the order to send in (YAML; see the README)")
	root := fset.String("root", "", "where the manifest's files are (default: the manifest's root)")
	concurrency := fset.Int("concurrency", 1, "how many messages are in flight at once")
	rate := fset.Float64("rate", 0, "at most this many messages per second (0: as fast as answered)")
	fresh := fset.Bool("fresh-ids", false, "give every message new identities, so that a replay is not a duplicate")
	async := fset.Bool("async", false, "POST with ?async=true when the manifest does not say (HTTP)")
	apiKey := fset.String("api-key", os.Getenv("FHIRGW_API_KEY"), "API key for the HTTP API (default $FHIRGW_API_KEY)")
	timeout := fset.Duration("timeout", time.Minute, "how long one send may wait for its answer")
	exchange := fset.String("exchange", "fhirgw.ingress", "the gateway's AMQP ingress exchange")
	replyTo := fset.String("reply-to", "", "the AMQP reply queue (default: a private queue; a partner user names its fhirgw.reply.<id>)")
	user := fset.String("user", "", "the AMQP user_id (default: the URL's user)")
	junit := fset.String("junit", "", "also write the results as JUnit XML to this file")
	asJSON := fset.Bool("json", false, "print the results as JSON instead of a table")
	fset.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: fhirgw replay --target URL [--manifest FILE] [options] [FILE|DIR...]")
		fset.PrintDefaults()
	}
	paths, err := parseInterleaved(fset, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "fhirgw replay: "+format+".\n", a...)
		return exitUsage
	}
	switch {
	case *target == "":
		return usageErr("give the gateway with --target URL")
	case *manifestPath == "" && len(paths) == 0:
		return usageErr("name the files or directories to replay, or a --manifest")
	case *concurrency < 1:
		return usageErr("--concurrency must be at least 1")
	case *rate < 0:
		return usageErr("--rate must not be negative")
	}
	plan, err := makePlan(*manifestPath, *root, paths)
	if err != nil {
		return usageErr("%v", err)
	}
	if *async {
		for i := range plan {
			plan[i].Async = true
		}
	}
	opts := replay.TargetOptions{APIKey: *apiKey, Timeout: *timeout, Exchange: *exchange, ReplyTo: *replyTo, UserID: *user}
	tgt, err := replay.NewTarget(ctx, *target, opts)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw replay: %v.\n", err)
		return exitCheckFailed
	}
	defer tgt.Close()

	stderr, _ := env.stderr.(*os.File)
	onTerminal := stderr != nil && replay.IsTerminal(stderr)
	runner := &replay.Runner{Target: tgt, Options: opts, Concurrency: *concurrency, Rate: *rate}
	var progress *replay.Progress
	if onTerminal || !*asJSON {
		progress = replay.NewProgress(env.stderr, len(plan), onTerminal)
		runner.Done = progress.Done
	}
	if *fresh {
		runner.Fresh = replay.NewFreshener(nil)
	}
	started := time.Now()
	results := runner.Run(ctx, plan)
	summary := replay.Summarize(results, time.Since(started))
	if progress != nil {
		progress.Finish()
	}

	if *asJSON {
		err = replay.WriteJSON(env.stdout, *target, results, summary)
	} else {
		err = replay.WriteTable(env.stdout, results, summary)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw replay: %v.\n", err)
		return exitCheckFailed
	}
	if *junit != "" {
		if err := writeJUnit(*junit, *target, results, summary, started); err != nil {
			fmt.Fprintf(env.stderr, "fhirgw replay: %v.\n", err)
			return exitCheckFailed
		}
	}
	if !summary.OK() {
		if *asJSON { // the table names failures; JSON readers get them on stderr too
			replay.WriteFailures(env.stderr, results)
		}
		return exitCheckFailed
	}
	return exitOK
}

// makePlan is the manifest's plan (its files under paths, when given), or
// the plan for paths without expectations.
func makePlan(manifestPath, root string, paths []string) (replay.Plan, error) {
	if manifestPath == "" {
		if root != "" {
			return nil, errors.New("--root needs a --manifest")
		}
		files, err := messageFiles(paths)
		if err != nil {
			return nil, err
		}
		return replay.PlanFiles(files), nil
	}
	m, err := replay.LoadManifest(manifestPath)
	if err != nil {
		return nil, err
	}
	return m.Plan(root, paths...)
}

func writeJUnit(path, target string, results []replay.Result, s replay.Summary, started time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := replay.WriteJUnit(f, target, results, s, started); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
