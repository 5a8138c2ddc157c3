// Package contract holds edgeloop's wire contracts that are not protobuf messages: the
// Kafka topic names, the MQTT topic layout and the rules for ids. docs/architecture.md is the
// prose version of the same contracts.
package contract

import (
	"fmt"
	"regexp"
	"strings"
)

// Kafka topics. Every message is keyed by project id, so that one project's events stay
// ordered in one partition.
const (
	// TopicExamples carries edgeloopv1.Example, written by the bridge.
	TopicExamples = "edgeloop.examples.v1"
	// TopicDeadLetter carries edgeloopv1.DeadLetter: what a service refused, and why.
	TopicDeadLetter = "edgeloop.deadletter.v1"
	// TopicBatchesApproved carries edgeloopv1.BatchApproved, written by the curator.
	TopicBatchesApproved = "edgeloop.batches.approved.v1"
	// TopicModels carries edgeloopv1.ModelRelease, written by retrain and by admins.
	TopicModels = "edgeloop.models.v1"
	// TopicDevices carries edgeloopv1.DeviceStatus heartbeats, forwarded by the bridge.
	TopicDevices = "edgeloop.devices.v1"
)

// Topics lists every Kafka topic of the v1 contract.
func Topics() []string {
	return []string{TopicExamples, TopicDeadLetter, TopicBatchesApproved, TopicModels, TopicDevices}
}

// MQTT topic layout.
const (
	mqttRoot = "edgeloop/v1"
	// ExamplesFilter matches every device's examples topic.
	ExamplesFilter = mqttRoot + "/+/+/examples"
	// StatusFilter matches every device's status topic.
	StatusFilter = mqttRoot + "/+/+/status"
)

// Shared is filter as an MQTT 5 shared subscription of group: each message goes to one
// member of the group.
func Shared(group, filter string) string { return "$share/" + group + "/" + filter }

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID reports whether s is a valid project or device id: [a-z0-9][a-z0-9-]{0,62}.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// CheckID returns a descriptive error when s is not a valid id of the given kind.
func CheckID(kind, s string) error {
	if !ValidID(s) {
		return fmt.Errorf("%s id %q is invalid: want [a-z0-9][a-z0-9-]{0,62}", kind, s)
	}
	return nil
}

var exampleIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidExampleID reports whether s is a valid example (or batch) id: 1-128 characters
// of [A-Za-z0-9._-], and not "." or "..", which a URL path or a file path would read as
// a directory (such an item could never be addressed).
func ValidExampleID(s string) bool {
	return s != "." && s != ".." && exampleIDPattern.MatchString(s)
}

// CheckExampleID returns a descriptive error when s is not a valid example id.
func CheckExampleID(s string) error {
	if !ValidExampleID(s) {
		return fmt.Errorf("example id %q is invalid: want 1-128 characters of [A-Za-z0-9._-], not . or ..", s)
	}
	return nil
}

// ExamplesTopic is the MQTT topic a device publishes its examples on.
func ExamplesTopic(project, device string) string {
	return mqttRoot + "/" + project + "/" + device + "/examples"
}

// StatusTopic is the MQTT topic of a device's retained status.
func StatusTopic(project, device string) string {
	return mqttRoot + "/" + project + "/" + device + "/status"
}

// AcksTopic is the MQTT topic on which the bridge confirms a device's examples
// (edgeloopv1.ExampleAck) once Kafka acknowledged them.
func AcksTopic(project, device string) string {
	return mqttRoot + "/" + project + "/" + device + "/acks"
}

// ReleaseTopic is the retained MQTT topic of a project's release.
func ReleaseTopic(project string) string { return mqttRoot + "/" + project + "/release" }

// SiteReleaseTopic is the retained MQTT topic of a device's site release: a release
// that only that device follows (a model adapted to its site).
func SiteReleaseTopic(project, device string) string {
	return mqttRoot + "/" + project + "/" + device + "/release"
}

// DeviceTopic is a parsed device topic.
type DeviceTopic struct {
	Project string
	Device  string
	// Kind is the last level: "examples" or "status".
	Kind string
}

// ParseDeviceTopic parses edgeloop/v1/{project}/{device}/{kind}.
func ParseDeviceTopic(topic string) (DeviceTopic, error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[0]+"/"+parts[1] != mqttRoot {
		return DeviceTopic{}, fmt.Errorf("topic %q: want %s/{project}/{device}/{examples|status}", topic, mqttRoot)
	}
	t := DeviceTopic{Project: parts[2], Device: parts[3], Kind: parts[4]}
	if err := CheckID("project", t.Project); err != nil {
		return DeviceTopic{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	if err := CheckID("device", t.Device); err != nil {
		return DeviceTopic{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	if t.Kind != "examples" && t.Kind != "status" {
		return DeviceTopic{}, fmt.Errorf("topic %q: unknown kind %q", topic, t.Kind)
	}
	return t, nil
}
