package project

import "errors"

// Errors the API maps to HTTP statuses.
var (
	// ErrInvalid: the request breaks a rule (400).
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the object is not in a state that allows it (409).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the caller's role does not allow it (403).
	ErrForbidden = errors.New("forbidden")
)
