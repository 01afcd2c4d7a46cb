package convstate

import (
	"encoding/json"
	"fmt"

	"hearth/client/store"
)

// MaxHealTries bounds the rejoins tried for one out-of-step episode
// before this device stops trying by itself (decision 0006).
const MaxHealTries = 5

// OutOfStep is a conversation this device cannot follow (decision 0006):
// a delivery showed that its group state is missing or behind, or a
// commit could not be processed. It is kept until a rejoin succeeds.
type OutOfStep struct {
	Cause string `json:"cause"` // the first failure, without message content
	Tries int    `json:"tries"` // rejoins tried and failed for good
	// LastError is the last rejoin's failure.
	LastError string `json:"last_error,omitempty"`
}

// Undecryptable counts deliveries of a conversation that could not be
// decrypted or were refused, not yet reported to the user.
type Undecryptable struct {
	Count  int    `json:"count"`
	Reason string `json:"reason"` // the latest one's
}

const (
	outOfStepPrefix     = "outofstep/"
	undecryptablePrefix = "undecryptable/"
)

// MarkOutOfStep records conv as out of step with cause, unless it is
// already (the first cause is kept).
func MarkOutOfStep(tx *store.Tx, conv, cause string) error {
	if _, ok, err := GetOutOfStep(tx, conv); err != nil || ok {
		return err
	}
	return PutOutOfStep(tx, conv, OutOfStep{Cause: cause})
}

// PutOutOfStep stores conv's out-of-step record.
func PutOutOfStep(tx *store.Tx, conv string, o OutOfStep) error {
	raw, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return tx.PutMeta(outOfStepPrefix+conv, raw)
}

// GetOutOfStep returns conv's out-of-step record, if it is out of step.
func GetOutOfStep(tx *store.Tx, conv string) (OutOfStep, bool, error) {
	raw := tx.Meta(outOfStepPrefix + conv)
	if raw == nil {
		return OutOfStep{}, false, nil
	}
	var o OutOfStep
	if err := json.Unmarshal(raw, &o); err != nil {
		return OutOfStep{}, false, fmt.Errorf("client: out-of-step record of %s: %w", conv, err)
	}
	return o, true, nil
}

// ClearOutOfStep records that conv is in step again.
func ClearOutOfStep(tx *store.Tx, conv string) error { return tx.DeleteMeta(outOfStepPrefix + conv) }

// OutOfStepConversations lists the conversations marked out of step.
func OutOfStepConversations(tx *store.Tx) []string { return tx.MetaNames(outOfStepPrefix) }

// AddUndecryptable counts one more delivery of conv that could not be
// decrypted, for reason.
func AddUndecryptable(tx *store.Tx, conv, reason string) error {
	u, err := getUndecryptable(tx, conv)
	if err != nil {
		return err
	}
	u.Count++
	u.Reason = reason
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.PutMeta(undecryptablePrefix+conv, raw)
}

func getUndecryptable(tx *store.Tx, conv string) (Undecryptable, error) {
	var u Undecryptable
	raw := tx.Meta(undecryptablePrefix + conv)
	if raw == nil {
		return u, nil
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("client: undecryptable count of %s: %w", conv, err)
	}
	return u, nil
}

// TakeUndecryptable returns and resets conv's count.
func TakeUndecryptable(tx *store.Tx, conv string) (Undecryptable, error) {
	u, err := getUndecryptable(tx, conv)
	if err != nil {
		return u, err
	}
	return u, tx.DeleteMeta(undecryptablePrefix + conv)
}

// UndecryptableConversations lists the conversations with a count.
func UndecryptableConversations(tx *store.Tx) []string { return tx.MetaNames(undecryptablePrefix) }
