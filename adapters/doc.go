// Package adapters will hold the filler adapters (http, rest, amqp): how a
// routed message reaches the system that fulfils it and how its answers come
// back, behind one small interface with documented acknowledgement semantics.
// Until they land, fillers consume their RabbitMQ queue (fhirgw.filler.<id>)
// themselves and POST their responses to the gateway's $process-message.
package adapters
