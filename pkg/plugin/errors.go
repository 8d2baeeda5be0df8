package plugin

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/state"
)

// macguard's own CNI error codes (the spec reserves 100 and up for plugins).
// They are part of the documented interface: scripts and tests match on them.
const (
	ErrCodeInterfaceNotFound uint = 100
	ErrCodeUnsupported       uint = 101
	ErrCodeAddrInUse         uint = 102
	ErrCodeRefused           uint = 103
	ErrCodeCheckMismatch     uint = 104
	ErrCodeState             uint = 105
)

func newError(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// asCNIError maps an error from the link and state layers to the CNI code a
// runtime (and a user reading events) can act on; errors that already are
// CNI errors keep their code.
func asCNIError(err error) error {
	if err == nil {
		return nil
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return err
	}
	code := types.ErrInternal
	switch {
	case errors.Is(err, link.ErrNetns):
		code = types.ErrInvalidEnvironmentVariables
	case errors.Is(err, link.ErrNotFound):
		code = ErrCodeInterfaceNotFound
	case errors.Is(err, link.ErrNotSupported):
		code = ErrCodeUnsupported
	case errors.Is(err, link.ErrAddrInUse):
		code = ErrCodeAddrInUse
	case errors.Is(err, link.ErrRefused):
		code = ErrCodeRefused
	case errors.Is(err, state.ErrBusy):
		code = types.ErrTryAgainLater
	case errors.As(err, new(stateError)):
		code = ErrCodeState
	}
	return types.NewError(code, err.Error(), "")
}

// stateError marks failures of the state directory and says what to check.
type stateError struct{ err error }

func (e stateError) Error() string {
	return e.err.Error() + " (check dataDir: it must be a writable directory, default /run/cni/macguard)"
}

func (e stateError) Unwrap() error { return e.err }

func stateErr(err error) error {
	if err == nil || errors.Is(err, state.ErrBusy) {
		return err
	}
	return stateError{err}
}

// SupportedVersions are the CNI versions macguard speaks. Chaining needs
// prevResult, which 0.1.0 and 0.2.0 lack.
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
