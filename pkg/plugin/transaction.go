package plugin

import (
	"errors"
	"fmt"
)

// transaction is the list of what an ADD has changed so far, each step with
// what undoes it, so that a failure at any point puts back exactly what was
// done, in reverse order, and says what could not be put back.
type transaction struct {
	// where names the interface and namespace for rollback messages.
	where string
	steps []*undoStep
	// release lets go of the state lock the transaction ran under.
	release func()
}

type undoStep struct {
	what   string
	undo   func() error
	undone bool
}

// done records a step that has been made. The returned function undoes it
// now, for a step whose effect is only needed for a while (the announce
// switches); rollback then skips it.
func (t *transaction) done(what string, undo func() error) (undoNow func() error) {
	s := &undoStep{what: what, undo: undo}
	t.steps = append(t.steps, s)
	return func() error {
		if s.undone {
			return nil
		}
		s.undone = true
		return s.undo()
	}
}

// rollback undoes every step not undone yet, last first, and returns cause
// with every undo that failed, each named.
func (t *transaction) rollback(cause error) error {
	var errs []error
	for i := len(t.steps) - 1; i >= 0; i-- {
		s := t.steps[i]
		if s.undone {
			continue
		}
		s.undone = true
		if err := s.undo(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; rolling back %s also failed: %w", cause, t.where, errors.Join(errs...))
	}
	return cause
}
