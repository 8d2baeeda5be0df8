package ociarchive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImageLayout: a single image (the pause image's shape, where
// hack/image writes an index) is named for every reader, keeps the
// platform it was given, and archives to the same bytes twice.
func TestImageLayout(t *testing.T) {
	src := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(src, []byte("pause"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := Layer([]File{{Path: "/pause", Source: src}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		t.Fatal(err)
	}
	const name = "localhost/test/pause:v1"
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	var archives [][]byte
	for range 2 {
		dir := filepath.Join(t.TempDir(), "layout")
		if err := WriteLayout(dir, img, name, layout.WithPlatform(plat)); err != nil {
			t.Fatal(err)
		}
		p, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		top, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := top.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
			t.Fatalf("index.json: want one image manifest, got %+v", im.Manifests)
		}
		d := im.Manifests[0]
		if d.Annotations[RefName] != name || d.Annotations[ContainerdName] != name {
			t.Errorf("annotations %v, want %s and %s = %q", d.Annotations, RefName, ContainerdName, name)
		}
		if d.Platform == nil || !d.Platform.Equals(plat) {
			t.Errorf("platform %v, want %v", d.Platform, plat)
		}
		out := filepath.Join(t.TempDir(), "out", "pause.oci.tar")
		if err := WriteArchive(dir, out, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, b)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Error("the same image archived twice gives two archives")
	}
}

func TestWriteLayoutRefusesOtherThings(t *testing.T) {
	l, err := Layer(nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(t.TempDir(), l, "x:y"); err == nil {
		t.Error("WriteLayout wrote a layer as an image")
	}
}
