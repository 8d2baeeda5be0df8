package cli

import "strings"

// ListFlag is macguardctl's repeatable flag (install's --chain-into,
// doctor's --conf): every use on the command line adds a value. A value
// taken from the environment (SetFromEnv) is a comma-separated list that the
// first value on the command line replaces, so a flag wins over the
// environment as every other flag does.
type ListFlag struct {
	// Values are the values given, in order.
	Values  []string
	fromEnv bool
}

// String is the values joined by commas (flag.Value).
func (l *ListFlag) String() string { return strings.Join(l.Values, ",") }

// Set adds v (flag.Value), first dropping what the environment gave.
func (l *ListFlag) Set(v string) error {
	if l.fromEnv {
		l.Values, l.fromEnv = nil, false
	}
	l.Values = append(l.Values, v)
	return nil
}

// SetFromEnv takes the values of the comma-separated list v (blank items
// dropped) until the command line gives one of its own.
func (l *ListFlag) SetFromEnv(v string) {
	l.Values = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l.Values = append(l.Values, p)
		}
	}
	l.fromEnv = true
}
