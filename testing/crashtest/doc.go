// Package crashtest kills a real fhirgw process (SIGKILL) while it takes
// messages, restarts it, and checks that every message it acknowledged with
// 202 reaches its filler queue. It has tests only.
package crashtest
