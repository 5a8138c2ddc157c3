// Package faulttest holds the fault-injection tests of the whole path from edge agents
// to Kafka: real agents, bridges, Kafka and Mosquitto, servers killed while examples
// with known ids flow, and afterwards every id accounted for. It has no code of its own
// besides its tests.
package faulttest
