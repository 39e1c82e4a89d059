package gateway

import (
	"net/http"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/gin-gonic/gin"
)

// capabilityStatement is GET [base]/metadata: the gateway as a messaging
// endpoint, with reliableCache and one supportedMessage per route.
func (g *Gateway) capabilityStatement(c *gin.Context) {
	type coding = envelope.Coding
	type endpoint struct {
		Protocol coding `json:"protocol"`
		Address  string `json:"address"`
	}
	type supported struct {
		Mode       string `json:"mode"`
		Definition string `json:"definition"`
	}
	type messaging struct {
		Endpoint         []endpoint  `json:"endpoint"`
		ReliableCache    int         `json:"reliableCache"`
		Documentation    string      `json:"documentation"`
		SupportedMessage []supported `json:"supportedMessage,omitempty"`
	}
	type software struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	type capability struct {
		ResourceType string      `json:"resourceType"`
		Status       string      `json:"status"`
		Date         string      `json:"date"`
		Kind         string      `json:"kind"`
		Software     software    `json:"software"`
		FHIRVersion  string      `json:"fhirVersion"`
		Format       []string    `json:"format"`
		Messaging    []messaging `json:"messaging"`
	}
	v := g.version
	if fv := c.Query("fhirVersion"); fv != "" {
		if pv, err := envelope.ParseVersion(fv); err == nil && pv != envelope.VersionAuto {
			v = pv
		}
	}
	msg := messaging{
		Endpoint:      []endpoint{{Protocol: coding{System: "http://terminology.hl7.org/CodeSystem/message-transport", Code: "http"}, Address: g.base + "/$process-message"}},
		ReliableCache: g.cfg.ReliableCacheMinutes,
		Documentation: "POST message Bundles to $process-message: synchronously (200 with the filler's response, or 202 when none arrives in time) " +
			"or with ?async=true (202 once the message is durable; answers are POSTed to response-url or the source endpoint). " +
			"A message seen again within reliableCache minutes gets its original answer.",
	}
	for _, r := range g.routes.Routes() {
		msg.SupportedMessage = append(msg.SupportedMessage, supported{Mode: "receiver", Definition: r.Event})
	}
	cs := capability{
		ResourceType: "CapabilityStatement", Status: "active", Date: instant(g.now()), Kind: "instance",
		Software:    software{Name: "fhirgw", Version: g.software},
		FHIRVersion: v.Release(), Format: []string{"application/fhir+json"}, Messaging: []messaging{msg},
	}
	g.writeFHIR(c, http.StatusOK, v, envelope.Encode(cs))
}
