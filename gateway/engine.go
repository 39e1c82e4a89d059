package gateway

import (
	"net/http"
	"strings"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routesEngine builds the gin engine: the FHIR API under the base path,
// health and metrics at the root, OperationOutcomes for 404 and 405.
func (g *Gateway) routesEngine(reg *prometheus.Registry) *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecovery(func(c *gin.Context, recovered any) {
		g.log.Error("handler panicked")
		g.fail(c, edgeError(http.StatusInternalServerError, nil, "exception", "", "the gateway failed to process the request"))
	}))
	fhir := e.Group(strings.TrimSuffix(g.cfg.HTTP.BasePath, "/"))
	fhir.GET("/metadata", g.capabilityStatement) // public, as FHIR servers' are
	fhir.Use(g.requireAuth)
	fhir.POST("/$process-message", g.processMessage)
	fhir.GET("/Task", g.searchTasks)
	fhir.GET("/Task/:id", g.readTask)
	fhir.GET("/Task/:id/_history", g.taskHistory)
	fhir.GET("/Task/:id/_history/:vid", g.readTaskVersion)
	fhir.GET("/Bundle/:id", g.readBundle)
	e.GET("/healthz", g.healthz)
	e.GET("/readyz", g.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	e.NoMethod(func(c *gin.Context) {
		c.Header("Allow", allowed(c.Request.URL.Path))
		g.fail(c, edgeError(http.StatusMethodNotAllowed, ErrMethod, envelope.IssueNotSupported, "",
			"%s is not allowed here; $process-message takes POST", c.Request.Method))
	})
	e.NoRoute(func(c *gin.Context) {
		g.fail(c, edgeError(http.StatusNotFound, ErrNotFound, envelope.IssueNotFound, "", "there is nothing at %s", c.Request.URL.Path))
	})
	return e
}

func allowed(path string) string {
	if strings.HasSuffix(path, "$process-message") {
		return http.MethodPost
	}
	return "GET, HEAD"
}
