package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/fhirgw/fhirgw/gateway"
)

// runPartnerUser is `fhirgw partner-user --config FILE --partner ID`: it
// prints the rabbitmqctl commands that create the partner's RabbitMQ user
// with exactly the permissions it needs, for an operator to run on the
// broker (or pipe into sh there).
func runPartnerUser(_ context.Context, env *environment, args []string) int {
	fset := flag.NewFlagSet("partner-user", flag.ContinueOnError)
	fset.SetOutput(env.stderr)
	path := fset.String("config", "", "the gateway's configuration file (YAML)")
	id := fset.String("partner", "", "the partner's id in the configuration")
	password := fset.String("password", "", "the user's password (default: a placeholder to replace)")
	fset.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: fhirgw partner-user --config FILE --partner ID [--password PASSWORD]")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *path == "" || *id == "" || fset.NArg() > 0 {
		fmt.Fprintln(env.stderr, "fhirgw partner-user: give --config FILE and --partner ID.")
		return exitUsage
	}
	cfg, err := gateway.LoadConfig(*path, os.Getenv)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw partner-user: %v.\n", err)
		return exitUsage
	}
	perms, err := cfg.PartnerPermissions(*id)
	if err != nil {
		fmt.Fprintf(env.stderr, "fhirgw partner-user: %v.\n", err)
		return exitUsage
	}
	pw := *password
	if pw == "" {
		pw = "CHANGE-ME"
	}
	fmt.Fprintf(env.stdout, `# RabbitMQ user for partner %s: publish to the ingress exchange, read its own queues, nothing else.
# The gateway declares the queues (its reply queue included) when it starts.
rabbitmqctl add_user %s %s
rabbitmqctl set_permissions -p %s %s %s %s %s
`, *id, shellQuote(perms.User), shellQuote(pw), shellQuote(perms.VHost), shellQuote(perms.User),
		shellQuote(perms.Configure), shellQuote(perms.Write), shellQuote(perms.Read))
	return exitOK
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
