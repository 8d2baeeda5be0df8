// Package plugintest holds the test helpers that need pkg/plugin itself.
// They live apart from internal/testutil so that pkg/plugin's own tests can
// use testutil without an import cycle: testutil must never import
// pkg/plugin, and only tests outside pkg/plugin import this package.
package plugintest

import (
	"bytes"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/plugin"
)

// WrappedPlugin is the real plugin, run in-process, with its link layer
// wrapped by wrap, so a test can inject a fault between real kernel steps.
// stdout and stderr collect what it prints and logs.
func WrappedPlugin(wrap func(link.Netns) link.Netns) (p *plugin.Plugin, stdout, stderr *bytes.Buffer) {
	p = plugin.New()
	p.Roots = testutil.Roots()
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
