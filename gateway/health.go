package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// healthz is liveness: the process answers.
func (g *Gateway) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz is readiness: the broker connections (relay, and AMQP ingress when
// there is one) are up and the ledger answers.
func (g *Gateway) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	broker := g.relay.Ready() && (g.ingressUp == nil || g.ingressUp())
	ledgerOK := g.core.Ping(ctx) == nil
	status := http.StatusOK
	if !broker || !ledgerOK {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"broker": broker, "ledger": ledgerOK, "backlog": g.core.Backlog()})
}
