package doctor

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"
)

// stdinRecorder is an invoke.Exec that records the configuration libcni
// hands each plugin instead of running it.
type stdinRecorder struct{ stdin [][]byte }

func (r *stdinRecorder) ExecPlugin(_ context.Context, _ string, stdin []byte, _ []string) ([]byte, error) {
	r.stdin = append(r.stdin, stdin)
	return []byte(`{"cniVersion":"1.0.0"}`), nil
}

func (r *stdinRecorder) FindInPath(plugin string, _ []string) (string, error) {
	return "/nonexistent/" + plugin, nil
}

func (r *stdinRecorder) Decode(b []byte) (version.PluginInfo, error) {
	return version.PluginSupports("1.0.0"), nil
}

// TestWithRuntimeMACIsWhatLibcniPasses holds withRuntimeMAC to libcni
// itself: the runtimeConfig the doctor rebuilds from the cache is the one
// libcni's ADD hands macguard, including when the file has a
// runtimeConfig of its own.
func TestWithRuntimeMACIsWhatLibcniPasses(t *testing.T) {
	const mac = "02:00:00:00:00:42"
	for _, entry := range []string{
		`{"type":"macguard","capabilities":{"mac":true}}`,
		`{"type":"macguard","capabilities":{"mac":true},"runtimeConfig":{"mac":"02:00:00:00:00:01","other":1}}`,
	} {
		t.Run(entry, func(t *testing.T) {
			list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[` + entry + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			rec := &stdinRecorder{}
			rt := &libcni.RuntimeConf{ContainerID: "c", NetNS: "/x", IfName: "eth0", CapabilityArgs: map[string]any{"mac": mac}}
			if _, err := libcni.NewCNIConfig([]string{"/nonexistent"}, rec).AddNetworkList(context.Background(), list, rt); err != nil {
				t.Fatal(err)
			}
			runtimeConfig := func(b []byte) any {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				return m["runtimeConfig"]
			}
			want := runtimeConfig(rec.stdin[0])
			if got := runtimeConfig(withRuntimeMAC([]byte(entry), mac)); !reflect.DeepEqual(got, want) {
				t.Errorf("doctor's runtimeConfig %v, libcni passes %v", got, want)
			}
		})
	}
}
