package envelope

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParse measures envelope parse+validate beside a plain
// encoding/json Unmarshal of the same bytes into map[string]any, the baseline
// the envelope must stay under half of. `make bench` prints the ratio.
func BenchmarkParse(b *testing.B) {
	for _, f := range []struct{ name, file string }{
		{"5KB", "lab-order.json"},
		{"60KB", "lab-result.json"},
	} {
		raw, err := os.ReadFile(filepath.Join("..", "testing", "fixtures", "r4", f.file))
		if err != nil {
			b.Fatal(err)
		}
		p := NewParser(Options{})
		b.Run(f.name+"/envelope", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(raw, VersionAuto); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(f.name+"/baseline-json-map", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
