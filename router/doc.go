// Package router decides where a message goes and gets it there: the route
// table (event -> fillers), the RabbitMQ topology it declares, and the relay
// that moves accepted messages from the gateway's outbox to the broker with
// publisher confirms.
//
// Topology (all durable, declared at start):
//
//	fhirgw.route       topic exchange; alternate-exchange fhirgw.unroutable
//	fhirgw.filler.<id> quorum queue per filler, bound with key filler.<id>,
//	                   dead-lettering to fhirgw.dead with key <id>
//	fhirgw.dead        direct exchange -> fhirgw.filler.<id>.dead (quorum)
//	fhirgw.unroutable  fanout exchange -> fhirgw.unroutable (quorum): a
//	                   publish that matched no queue, a configuration error
package router
