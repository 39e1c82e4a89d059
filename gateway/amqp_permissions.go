package gateway

import (
	"fmt"
	"github.com/fhirgw/fhirgw/adapters"
	"regexp"
	"strings"
)

// AMQPPermissions are the RabbitMQ permissions (regexps, as rabbitmqctl
// set_permissions takes them) a partner's user needs: write to the ingress
// exchange; read its reply queue and the queues of the amqp fillers it may
// be; configure nothing (the gateway declares every queue).
type AMQPPermissions struct {
	User, VHost            string
	Configure, Write, Read string
}

// PartnerPermissions returns the permissions of partner id's AMQP user.
func (c Config) PartnerPermissions(id string) (AMQPPermissions, error) {
	var p *PartnerConfig
	for i := range c.Partners {
		if c.Partners[i].ID == id {
			p = &c.Partners[i]
		}
	}
	if p == nil {
		return AMQPPermissions{}, fmt.Errorf("%w: there is no partner %q", ErrConfig, id)
	}
	if p.AMQPUser == "" {
		return AMQPPermissions{}, fmt.Errorf("%w: partner %s has no amqpUser", ErrConfig, id)
	}
	topo := c.Topology()
	amqpFillers := map[string]bool{}
	for _, f := range c.Fillers {
		kind, _ := adapters.KindOf(f.Adapter)
		amqpFillers[f.ID] = !kind.Driven()
	}
	reads := []string{regexp.QuoteMeta(topo.ReplyQueue(p.ID))}
	for _, f := range p.Fillers {
		if amqpFillers[f] {
			reads = append(reads, regexp.QuoteMeta(topo.FillerQueue(f)))
		}
	}
	return AMQPPermissions{
		User: p.AMQPUser, VHost: c.AMQP.vhost(),
		Configure: "^$",
		Write:     "^" + regexp.QuoteMeta(topo.IngressExchange()) + "$",
		Read:      "^(" + strings.Join(reads, "|") + ")$",
	}, nil
}
