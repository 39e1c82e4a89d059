// Package brokertest gives integration tests a real RabbitMQ broker.
//
// A test binary that needs one calls Main from its TestMain. Main picks, once
// per binary:
//
//  1. RABBITMQ_URL, when set;
//  2. else a container from testcontainers-go, when a Docker engine answers;
//  3. else a private local node of Debian's rabbitmq-server, with its own node
//     name, ports, data directory and Erlang cookie, installed with apt-get
//     when the package is missing and the process runs as root. A system
//     broker on 5672 is never used or disturbed.
//
// With REQUIRE_BROKER=1 (as in `make test`) a missing broker fails the test
// binary; otherwise tests that call URL skip with the reason.
package brokertest
