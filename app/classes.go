package app

import (
	"context"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/console"
	"github.com/crescendo-hq/crescendo/store"
)

// consoleClasses shows bot detection's verdicts (F14) in the console.
type consoleClasses struct{ st *store.Store }

// ClassShares counts the organization's classified fans by class; fans not
// classified yet are left out of the shares rather than guessed.
func (c consoleClasses) ClassShares(ctx context.Context, orgID string) (map[console.Class]int, error) {
	counts, err := c.st.ClassShares(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := map[console.Class]int{}
	for class, n := range counts {
		if class != "unknown" {
			out[console.Class(class)] += n
		}
	}
	return out, nil
}

// FanClassification reports the fan's class and the evidence behind it.
func (c consoleClasses) FanClassification(ctx context.Context, fan uuid.UUID) (console.Classification, bool, error) {
	bc, err := c.st.FanClassification(ctx, fan)
	if err != nil || bc.UpdatedAt.IsZero() {
		return console.Classification{}, false, err
	}
	reasons := make([]string, len(bc.Reasons))
	for i, r := range bc.Reasons {
		reasons[i] = string(r.Signal) + ": " + r.Evidence
	}
	return console.Classification{Class: console.Class(bc.Class), Reasons: reasons, UpdatedAt: bc.UpdatedAt}, true, nil
}
