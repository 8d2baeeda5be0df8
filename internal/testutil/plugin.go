package testutil

// Helpers for what goes into a macguard run and what comes out: its
// conflist entry and the result it prints.

import (
	"encoding/json"
	"fmt"
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
