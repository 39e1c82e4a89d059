// Package adapters delivers routed messages to fillers and brings back what
// they answer. An Adapter hands one message to one filler (http: POST to the
// filler's $process-message); a Worker consumes a filler's RabbitMQ queue and
// drives its adapter with retries, exponential backoff with jitter, and
// parking in the filler's dead-letter queue when retrying cannot help or has
// gone on too long. Fillers of kind amqp need neither: they consume their
// queue themselves.
package adapters
