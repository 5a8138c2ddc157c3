package contract

// Reasons a message is refused and dead-lettered (edgeloop.v1.DeadLetter.reason), by
// any service. They are stable: metrics, alerts and people's runbooks key on them.
const (
	// ReasonTooLarge: the payload exceeds the bridge's or Kafka's size limit.
	ReasonTooLarge = "too_large"
	// ReasonBadTopic: the MQTT topic does not follow edgeloop/v1/{project}/{device}/{kind}.
	ReasonBadTopic = "bad_topic"
	// ReasonBadProtobuf: the payload is not the topic's edgeloop.v1 message.
	ReasonBadProtobuf = "bad_protobuf"
	// ReasonTopicMismatch: the message names another project or device than its topic.
	ReasonTopicMismatch = "topic_mismatch"
	// ReasonMissingField: a required field is empty.
	ReasonMissingField = "missing_field"
	// ReasonBadID: a project, device or example id breaks the id rules.
	ReasonBadID = "bad_id"
	// ReasonBadImage: the image does not decode or is not PNG/JPEG.
	ReasonBadImage = "bad_image"
	// ReasonBadDimensions: the image's size is missing, wrong or over the limit.
	ReasonBadDimensions = "bad_dimensions"
	// ReasonBadConfidence: a confidence is outside [0, 1].
	ReasonBadConfidence = "bad_confidence"
	// ReasonBoxOutside: a box is not inside the image.
	ReasonBoxOutside = "box_outside_image"
	// ReasonNoReason: an example names no sampling reason.
	ReasonNoReason = "no_sampling_reason"
	// ReasonUnknownReason: a sampling reason's kind is not one edgeloop.v1.SamplingKind
	// defines.
	ReasonUnknownReason = "unknown_sampling_reason"
	// ReasonBadTimestamp: a timestamp is invalid or too far in the future.
	ReasonBadTimestamp = "bad_timestamp"
	// ReasonBadLabel: a label or correction is malformed.
	ReasonBadLabel = "bad_label"
	// ReasonUnknownProject: the project does not exist (create it first).
	ReasonUnknownProject = "unknown_project"
	// ReasonTaskMismatch: the example's task is not its project's.
	ReasonTaskMismatch = "task_mismatch"
	// ReasonUnknownClass: a class is not one of the project's.
	ReasonUnknownClass = "unknown_class"
	// ReasonCorruptState: a document the message would update in object storage does
	// not decode; the detail names it (repair or delete it, then replay the message).
	ReasonCorruptState = "corrupt_state"
	// ReasonRetryExhausted: handling failed again and again while the service's
	// dependencies answered (message.GiveUp); the detail holds the last error.
	ReasonRetryExhausted = "retry_exhausted"
)
