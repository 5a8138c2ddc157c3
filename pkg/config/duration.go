package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as "90s", "10m", "1h".
type Duration time.Duration

// UnmarshalJSON reads "90s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) == nil {
			*d = Duration(n)
			return nil
		}
		return fmt.Errorf("duration: want a string like \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "1h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default sets *v to d when it is zero or negative: the zero value of a setting means
// "the default".
func Default[T int | int64 | float32 | float64 | time.Duration | Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// IfZero sets *v to d when it is the zero value (0, "", …): for settings whose
// negative values are errors for Validate to report, not defaults.
func IfZero[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
