// Command amqpsend publishes message Bundles to a gateway's AMQP ingress as a
// partner would, and prints every answer that comes back on its reply queue
// (status header, correlation_id, body) until --wait passes without one.
//
//	go run ./testing/amqpsend --url amqp://guest:guest@127.0.0.1:5672/ FILE...
//
// By default it declares a private reply queue of its own (the user needs
// configure permission, as guest has); a partner user created by
// `fhirgw partner-user` names its reply queue with --reply-to instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/fhirgw/fhirgw/router"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "the broker, as the partner's user")
	user := flag.String("user", "guest", "the user_id to publish with: the connection's user")
	exchange := flag.String("exchange", "fhirgw.ingress", "the gateway's ingress exchange")
	replyTo := flag.String("reply-to", "", "the partner's reply queue (default: a private queue declared here)")
	version := flag.String("fhir-version", "4.0", "the fhirVersion of the content type")
	wait := flag.Duration("wait", 5*time.Second, "how long to wait for more answers")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "amqpsend: name the message files to send.")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, *user, *exchange, *replyTo, *version, *wait, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "amqpsend: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, user, exchange, replyTo, version string, wait time.Duration, files []string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if replyTo == "" {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return fmt.Errorf("declare a reply queue: %w", err)
		}
		replyTo = q.Name
	}
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", replyTo, err)
	}
	out, err := router.NewConfirmer(conn)
	if err != nil {
		return err
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		cid := uuid.NewString()
		err = out.Publish(ctx, exchange, "", amqp.Publishing{ContentType: "application/fhir+json; fhirVersion=" + version,
			DeliveryMode: amqp.Persistent, UserId: user, ReplyTo: replyTo, CorrelationId: cid, MessageId: uuid.NewString(), Body: body})
		if err != nil {
			return fmt.Errorf("publish %s: %w", f, err)
		}
		fmt.Printf("sent %s with correlation_id %s, answers to %s\n", f, cid, replyTo)
	}
	for {
		select {
		case d := <-replies:
			fmt.Printf("\n<- correlation_id %s, %s %v, %s %v\n%s\n", d.CorrelationId, router.HeaderStatus, d.Headers[router.HeaderStatus],
				router.HeaderLocation, d.Headers[router.HeaderLocation], d.Body)
		case <-time.After(wait):
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
