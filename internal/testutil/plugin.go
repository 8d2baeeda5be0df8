package testutil

// Helpers for what goes into a macguard run and what comes out: its
// conflist entry, the result it prints and the MAC macguardctl promises.
//
// Nothing here may import pkg/plugin: its own tests use this package.
// Helpers that need the plugin itself are in internal/plugintest.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// Conf is macguard's entry in a conflist: the given version, dataDir, extra
// fields (a JSON object body such as `"assign":"always"`) and prevResult.
func Conf(version, dataDir, fields, prevResult string) []byte {
	c := fmt.Sprintf(`{"cniVersion":%q,"name":"reliability","type":"macguard","dataDir":%q`, version, dataDir)
	if fields != "" {
		c += "," + fields
	}
	if prevResult != "" {
		c += `,"prevResult":` + prevResult
	}
	return []byte(c + "}")
}

// Result is the part of a printed CNI result the tests read; every
// supported version shares these field names.
type Result struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address   string `json:"address"`
		Interface *int   `json:"interface"`
	} `json:"ips"`
}

func decodeResult(out []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("result is not JSON: %w: %s", err, out)
	}
	return r, nil
}

// ParseResult decodes a printed result, failing the test when it is not
// one.
func ParseResult(t testing.TB, out []byte) Result {
	t.Helper()
	r, err := decodeResult(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ResultMAC returns the MAC a result reports for ifName in sandbox.
func ResultMAC(out []byte, ifName, sandbox string) (string, error) {
	r, err := decodeResult(out)
	if err != nil {
		return "", err
	}
	for _, i := range r.Interfaces {
		if i.Name == ifName && i.Sandbox == sandbox {
			return i.Mac, nil
		}
	}
	return "", fmt.Errorf("result has no entry for %s in %s: %s", ifName, sandbox, out)
}

// CNIError returns err as the CNI error an in-process command returned,
// failing the test when it is something else: every error macguard returns
// to skel must be one, or skel prints a generic code in its place.
func CNIError(t testing.TB, err error) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a CNI error, got %v", err)
	}
	return e
}

// DerivedMAC asks macguardctl (ToolBinary) which MAC a pod or VM gets:
// `macguardctl mac` with args such as --namespace, --pod or --vm and
// --ifname, the operator's pre-registration command. The suites compare
// what the data path did against this promise. It fails the test unless the
// tool prints a locally administered unicast MAC (the derivation contract),
// and returns it in the canonical lowercase colon form.
func DerivedMAC(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(ToolBinary(t), append([]string{"mac"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no CNI_COMMAND: CLI mode
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("macguardctl mac %v: %v: %s", args, err, errb.String())
	}
	mac := strings.TrimSpace(out.String())
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatalf("macguardctl mac %v printed %q: %v", args, mac, err)
	}
	if hw[0]&0x01 != 0 || hw[0]&0x02 == 0 {
		t.Fatalf("derived MAC %s is not a locally administered unicast address", mac)
	}
	return hw.String()
}
