package online

import (
	"fmt"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

// canarySlot is the canary version a share of the users learn under.
type canarySlot struct {
	m      Model
	params towers.OnlineParams
	share  float64
}

// SetCanary makes a share of the users (cache.InCanary) learn under m, a
// canary version, while the others stay on the current one: each user's
// state belongs to the version of its arm, re-based on it (its offline
// vector plus the ring's events it did not train on) at its next event or by
// Rematerialize, exactly as at a switch. The canary must have the current
// version's dim; dense mode has no canary (one tower is fine-tuned).
func (u *Updater) SetCanary(m Model, share float64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.model.Dense != nil || m.Dense != nil:
		return fmt.Errorf("canary %s: dense mode has no canary", m.Items.Version())
	case m.Items.Dim() != u.model.Items.Dim():
		return fmt.Errorf("canary %s: dim %d, the current version's %d", m.Items.Version(), m.Items.Dim(), u.model.Items.Dim())
	case m.Items.Version() == u.model.Items.Version():
		return fmt.Errorf("canary %s: it is the current version", m.Items.Version())
	case !(share > 0 && share <= 0.5):
		return fmt.Errorf("canary %s: share %v, want (0, 0.5]", m.Items.Version(), share)
	}
	u.canary = &canarySlot{m: m, params: u.paramsOf(m), share: share}
	u.gen++
	return nil
}

// ClearCanary ends the canary: its users go back to the current version
// (re-based at their next event or by Rematerialize).
func (u *Updater) ClearCanary() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.canary != nil {
		u.canary = nil
		u.gen++
	}
}

// Canary returns the canary's version and share ("" when none).
func (u *Updater) Canary() (string, float64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.canary == nil {
		return "", 0
	}
	return u.canary.m.Items.Version(), u.canary.share
}

// modelOf is the model (and its step parameters) user uid learns under: the
// canary's for the users of its share, else the current one. Called with
// u.mu held.
func (u *Updater) modelOf(uid uint32) (*Model, *towers.OnlineParams) {
	if c := u.canary; c != nil && cache.InCanary(uid, c.share) {
		return &c.m, &c.params
	}
	return &u.model, &u.params
}

// modelNamed is the held model of a version (the current one's when it is
// neither: a state of a version being left, whose Scale is the same kind).
// Called with u.mu held.
func (u *Updater) modelNamed(version string) *Model {
	if c := u.canary; c != nil && c.m.Items.Version() == version {
		return &c.m
	}
	return &u.model
}
