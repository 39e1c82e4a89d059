package gateway

import (
	"fmt"

	"github.com/fhirgw/fhirgw/adapters"
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
