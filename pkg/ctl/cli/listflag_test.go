package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestListFlag(t *testing.T) {
	tests := []struct {
		name string
		env  string // "" = not set
		args []string
		want []string
	}{
		{name: "unset", want: nil},
		{name: "repeated", args: []string{"--x", "a", "--x", "b"}, want: []string{"a", "b"}},
		{name: "environment", env: "a, b,,c ", want: []string{"a", "b", "c"}},
		{name: "the command line replaces the environment", env: "a,b", args: []string{"--x", "c", "--x", "d"}, want: []string{"c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l ListFlag
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Var(&l, "x", "repeatable")
			if tt.env != "" {
				l.SetFromEnv(tt.env)
			}
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Values, tt.want) {
				t.Errorf("values %q, want %q", l.Values, tt.want)
			}
		})
	}
}
