// Package e2e runs the real fhirgw binary against a real broker: a crash test
// that SIGKILLs it while it takes messages and checks that every message it
// acknowledged with 202 reaches its filler queue, and the ingest benchmark
// that compares it with a plain amqp091-go publisher. It has tests only.
package e2e
