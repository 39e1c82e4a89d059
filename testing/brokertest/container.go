package brokertest

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/rabbitmq"
)

// containerImage is pinned so that every run tests the same broker.
const containerImage = "rabbitmq:4.1-management"

// startContainer runs RabbitMQ in a container when a Docker engine answers.
// A docker CLI on PATH proves nothing: the provider's health check decides,
// and fails within milliseconds when no daemon listens.
func startContainer(ctx context.Context, logf func(string, ...any)) (*Broker, error) {
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, err
	}
	defer provider.Close()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := provider.Health(hctx); err != nil {
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	logf("brokertest: starting %s with testcontainers-go", containerImage)
	c, err := rabbitmq.Run(ctx, containerImage)
	if err != nil {
		return nil, err
	}
	url, err := c.AmqpURL(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	mgmt, err := c.HttpURL(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	return &Broker{url: url, close: func(ctx context.Context) error { return c.Terminate(ctx) },
		env: map[string]string{EnvManagementURL: mgmt}}, nil
}
