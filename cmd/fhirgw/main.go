// Command fhirgw is the FHIR messaging gateway: `fhirgw validate` checks
// message Bundles offline. Run `fhirgw help` for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of every subcommand.
const (
	exitOK          = 0 // success
	exitCheckFailed = 1 // a check failed (an invalid message, ...)
	exitUsage       = 2 // bad usage or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: it gets its own arguments and the process's
// streams and returns an exit code.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) int
}

// environment is what main hands every subcommand.
type environment struct {
	stdout, stderr io.Writer
	logLevel       string
}

func commands() map[string]command {
	return map[string]command{
		"validate":     {"validate FHIR message Bundles offline", runValidate},
		"serve":        {"run the gateway", runServe},
		"partner-user": {"print the commands that create a partner's RabbitMQ user", runPartnerUser},
		"replay":       {"replay message fixtures against a running gateway and check the answers", runReplay},
	}
}

// run dispatches `fhirgw [--log-level L] COMMAND ARGS...`.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := &environment{stdout: stdout, stderr: stderr}
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		switch a := args[0]; {
		case a == "-h" || a == "--help" || a == "-help":
			usage(stdout)
			return exitOK
		case a == "--log-level" || a == "-log-level":
			if len(args) < 2 {
				fmt.Fprintln(stderr, "fhirgw: --log-level needs a value (debug, info, warn or error).")
				return exitUsage
			}
			env.logLevel, args = args[1], args[1:]
		case len(a) > 12 && (a[:12] == "--log-level="):
			env.logLevel = a[12:]
		default:
			fmt.Fprintf(stderr, "fhirgw: unknown option %s; run 'fhirgw help'.\n", a)
			return exitUsage
		}
		args = args[1:]
	}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if args[0] == "help" {
		usage(stdout)
		return exitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "fhirgw: unknown command %q; run 'fhirgw help'.\n", args[0])
		return exitUsage
	}
	return cmd.run(ctx, env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `fhirgw is a FHIR messaging gateway.

Usage:
  fhirgw [--log-level debug|info|warn|error] COMMAND [ARGS]

Commands:
  serve --config FILE
      run the gateway: HTTP $process-message intake, custody, routing through RabbitMQ
  partner-user --config FILE --partner ID [--password PASSWORD]
      print the rabbitmqctl commands that create a partner's RabbitMQ user and its permissions
  replay --target URL [--manifest FILE] [--fresh-ids] [--concurrency N] [--rate R] [--junit FILE] [--json] [FILE|DIR...]
      send message fixtures to a running gateway (HTTP or AMQP) and check the answers; exit 1 on any mismatch
  validate [--fhir-version 4.0|5.0|auto] [--format text|json] FILE|DIR...
      check FHIR message Bundles offline; exit 0 when all are valid, 1 when any is invalid

Run 'fhirgw COMMAND -h' for a command's options.
Exit codes: 0 success, 1 a check failed, 2 bad usage or configuration.
`)
}
