// Package edgeloopv1 holds the generated Go code of edgeloop's v1 protobuf messages
// (schemas/edgeloop/v1/*.proto). Regenerate it with `make generate`; never edit the
// *.pb.go files by hand.
package edgeloopv1
