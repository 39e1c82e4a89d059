package gateway

import (
	"fmt"

	"github.com/fhirgw/fhirgw/ack"
	"github.com/fhirgw/fhirgw/adapters"
	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/router"
	"go.uber.org/zap"
)

// RouteTable is the configuration's route table.
func (c Config) RouteTable() (*router.Table, error) {
	routes := make([]router.Route, len(c.Routes))
	for i, r := range c.Routes {
		routes[i] = router.Route{Event: r.Event, Fillers: r.Fillers, SyncTimeout: r.SyncTimeout.Std(), AckDeadline: r.AckDeadline.Std(), CancelEvent: r.CancelEvent}
	}
	return router.NewTable(routes)
}

// Topology is the configuration's RabbitMQ topology.
func (c Config) Topology() router.Topology {
	fillers := make([]string, len(c.Fillers))
	for i, f := range c.Fillers {
		fillers[i] = f.ID
	}
	var partners []string
	for _, p := range c.Partners {
		if p.AMQPUser != "" {
			partners = append(partners, p.ID)
		}
	}
	return router.Topology{Prefix: c.AMQP.Prefix, Fillers: fillers, Partners: partners}
}

// FillerWorkers builds one delivery worker per filler whose adapter the
// gateway drives (http, rest); amqp fillers consume their queue themselves.
func (c Config) FillerWorkers(sink adapters.Sink, log *zap.Logger) ([]*adapters.Worker, error) {
	topo := c.Topology()
	var workers []*adapters.Worker
	for _, f := range c.Fillers {
		kind, _ := adapters.KindOf(f.Adapter)
		if !kind.Driven() {
			continue
		}
		a, err := kind.New(f.Spec())
		if err != nil {
			return nil, fmt.Errorf("filler %s: %w", f.ID, err)
		}
		workers = append(workers, adapters.NewWorker(adapters.WorkerConfig{
			AMQPURL: c.AMQP.URL, Queue: topo.FillerQueue(f.ID), DeadExchange: topo.DeadExchange(), DeadKey: f.ID,
			Filler: f.ID, Adapter: a, Sink: sink, Log: log, Concurrency: f.Concurrency,
			Retry: adapters.RetryPolicy{MaxAttempts: f.Retry.MaxAttempts, MaxAge: f.Retry.MaxAge.Std(),
				Initial: f.Retry.InitialBackoff.Std(), Max: f.Retry.MaxBackoff.Std()},
		}))
	}
	return workers, nil
}

// CoreConfig is the exchange core's configuration from c: its rules and
// names; the caller adds the ledger, the relay, the pusher, the logger and
// the clock.
func (c Config) CoreConfig(software string) (ack.CoreConfig, error) {
	routes, err := c.RouteTable()
	if err != nil {
		return ack.CoreConfig{}, err
	}
	v, err := envelope.ParseVersion(c.FHIRVersion)
	if err != nil || v == envelope.VersionAuto {
		return ack.CoreConfig{}, fmt.Errorf("%w: fhirVersion %q", ErrConfig, c.FHIRVersion)
	}
	driven := map[string]bool{}
	for _, f := range c.Fillers {
		kind, _ := adapters.KindOf(f.Adapter)
		driven[f.ID] = kind.Driven()
	}
	return ack.CoreConfig{
		Routes: routes, Driven: func(filler string) bool { return driven[filler] }, CallbackAllowed: c.callbackAllowed,
		Sender:         envelope.Sender{Name: "fhirgw", Software: "fhirgw", Version: software, Endpoint: c.PublicBase()},
		DefaultVersion: v, MaxBytes: c.HTTP.MaxBodyBytes, MaxBacklog: c.Outbox.MaxBacklog, Retention: c.Retention.Std(),
	}, nil
}

// callbackAllowed reports whether answers may be pushed to target:
// normalised as the pusher dials it (ack.CallbackURL), it is under one of
// callbacks.allow.
func (c Config) callbackAllowed(target string) bool {
	u, err := ack.CallbackURL(target)
	return err == nil && c.CallbackAllowed(u)
}
