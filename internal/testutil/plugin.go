package testutil

// Helpers for what goes into a macguard run and what comes out: its
// conflist entry and the result it prints.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/plugin"
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

// ResultMAC returns the MAC a result reports for ifName in sandbox.
func ResultMAC(out []byte, ifName, sandbox string) (string, error) {
	var r struct {
		Interfaces []struct{ Name, Mac, Sandbox string }
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("result is not JSON: %w: %s", err, out)
	}
	for _, i := range r.Interfaces {
		if i.Name == ifName && i.Sandbox == sandbox {
			return i.Mac, nil
		}
	}
	return "", fmt.Errorf("result has no entry for %s in %s: %s", ifName, sandbox, out)
}

// WrappedPlugin is the real plugin, run in-process, with its link layer
// wrapped by wrap, so a test can inject a fault between real kernel steps.
// stdout and stderr collect what it prints and logs.
func WrappedPlugin(wrap func(link.Netns) link.Netns) (p *plugin.Plugin, stdout, stderr *bytes.Buffer) {
	p = plugin.New()
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	p.Stdout, p.Stderr = stdout, stderr
	p.Open = func(path string) (link.Netns, error) {
		n, err := link.Open(path)
		if err != nil {
			return nil, err
		}
		return wrap(n), nil
	}
	return p, stdout, stderr
}
