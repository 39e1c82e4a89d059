// Command devstack is `make run`: it finds or starts a RabbitMQ broker (as the
// tests do), starts the fhirgw binary with the demo configuration, and runs a
// sample filler for the demo's "lab" queue, until Ctrl-C.
//
//	go run ./testing/devstack --gateway bin/fhirgw --config testing/demo/fhirgw.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"go.uber.org/zap"
)

func main() {
	bin := flag.String("gateway", "bin/fhirgw", "the fhirgw binary")
	config := flag.String("config", "testing/demo/fhirgw.yaml", "the gateway configuration")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *config); err != nil {
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, config string) error {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	cfg, err := gateway.LoadConfig(config, os.Getenv)
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	broker, err := brokertest.Start(bctx, logf)
	cancel()
	if err != nil {
		return fmt.Errorf("no RabbitMQ broker: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = broker.Close(sctx)
	}()

	gw := exec.Command(bin, "serve", "--config", config)
	gw.Env = append(os.Environ(), "RABBITMQ_URL="+broker.URL(), "FHIRGW_AMQP_URL=")
	gw.Stdout, gw.Stderr = os.Stderr, os.Stderr
	if err := gw.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- gw.Wait() }()
	defer func() {
		_ = gw.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = gw.Process.Kill()
		}
	}()

	root := "http://" + cfg.HTTP.Addr
	base := root + cfg.HTTP.BasePath
	if err := waitReady(ctx, root+"/readyz", exited); err != nil {
		return err
	}
	log, _ := zap.NewDevelopment()
	filler := samplefiller.New(samplefiller.Config{
		AMQPURL: broker.URL(), Queue: cfg.Topology().FillerQueue("lab"), GatewayURL: base, Name: "sample lab", Log: log, Progress: true,
	})
	fillerDone := make(chan error, 1)
	go func() { fillerDone <- filler.Run(ctx) }()

	fmt.Printf(`
fhirgw is running at %[1]s with the demo configuration (%[2]s)
and a sample lab filler that answers every lab order with an ok response,
then reports progress (specimen received) and completion.

Send a lab order and get the lab's response back (synchronous):

  curl -s -X POST '%[1]s/$process-message' \
    -H 'Content-Type: application/fhir+json' \
    --data-binary @testing/fixtures/r4/lab-order.json

Or asynchronously, then follow the Task named by Content-Location:

  curl -si -X POST '%[1]s/$process-message?async=true' \
    -H 'Content-Type: application/fhir+json' \
    --data-binary @testing/fixtures/r4/lab-result.json

Or as an AMQP partner: publish to the ingress exchange and read the answers
(the accepted OperationOutcome, then the response and progress) on a reply queue:

  go run ./testing/amqpsend --url '%[3]s' --exchange %[4]s \
    testing/fixtures/r4/lab-order.json

Or replay every project fixture and check what each gets (over HTTP, or
with --target '%[3]s' over AMQP):

  bin/fhirgw replay --target '%[1]s' --manifest testing/fixtures/manifest.yaml --fresh-ids

Press Ctrl-C to stop.
`, base, config, broker.URL(), cfg.Topology().IngressExchange())
	select {
	case <-ctx.Done():
		return nil
	case err := <-exited:
		return fmt.Errorf("the gateway exited: %v", err)
	case err := <-fillerDone:
		return fmt.Errorf("the sample filler stopped: %v", err)
	}
}

func waitReady(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the gateway exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the gateway did not become ready at %s", url)
}
