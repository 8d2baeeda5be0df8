package macaddr

import "testing"

// BenchmarkParsePrefix: every ADD parses its config's prefix (pkg/config),
// so this is on the plugin's hot path, next to BenchmarkDerive.
func BenchmarkParsePrefix(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePrefix("0a:58:00"); err != nil {
			b.Fatal(err)
		}
	}
}
