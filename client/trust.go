package client

import (
	"context"
	"fmt"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// Safety is what `chat safety-number` shows for a user.
type Safety struct {
	User string
	// Pinned is the safety number with the identity key this device
	// trusts for User ("" if it never saw one); Current the one with the
	// key User's server presents now. They differ when the key changed.
	Pinned, Current string
}

// SafetyNumber returns the safety numbers of this device's user and user
// (user@domain): with the identity key pinned for user and with the one
// its server presents now.
func (c *Client) SafetyNumber(ctx context.Context, user string) (Safety, error) {
	const op = "client.SafetyNumber"
	self, them, err := c.safetyUsers(op, user)
	if err != nil {
		return Safety{}, err
	}
	s := Safety{User: them.String()}
	selfKey, err := c.ownKey()
	if err != nil {
		return s, err
	}
	if k, ok, err := c.dir.PinnedKey(them); err != nil {
		return s, err
	} else if ok {
		s.Pinned = identity.SafetyNumber(self, selfKey, them, k)
	}
	k, _, err := c.dir.Presented(ctx, them)
	if err != nil {
		return s, err
	}
	s.Current = identity.SafetyNumber(self, selfKey, them, k)
	return s, nil
}

// Trust accepts the identity key user's server presents now in place of
// the pinned one (after the person compared safety numbers). If number is
// not empty, it must be the safety number of that key (what SafetyNumber
// showed as Current): a key that changed again meanwhile is refused.
// It returns the safety number of the key now trusted.
func (c *Client) Trust(ctx context.Context, user, number string) (string, error) {
	const op = "client.Trust"
	self, them, err := c.safetyUsers(op, user)
	if err != nil {
		return "", err
	}
	selfKey, err := c.ownKey()
	if err != nil {
		return "", err
	}
	var want identity.PublicKey
	if number != "" {
		k, _, err := c.dir.Presented(ctx, them)
		if err != nil {
			return "", err
		}
		if identity.SafetyNumber(self, selfKey, them, k) != number {
			return "", wire.Errorf(op, wire.Code_CODE_CONFLICT, "the safety number of %v's current key is not %q; nothing changed", them, number)
		}
		want = k
	}
	k, err := c.dir.Trust(ctx, them, want)
	if err != nil {
		return "", err
	}
	return identity.SafetyNumber(self, selfKey, them, k), nil
}

// safetyUsers parses user and returns it with this device's user.
func (c *Client) safetyUsers(op, user string) (self, them identity.UserAddress, err error) {
	a, err := c.acct.Account()
	if err != nil {
		return self, them, err
	}
	if self, err = identity.ParseUser(a.User); err != nil {
		return self, them, fmt.Errorf("%s: %w", op, err)
	}
	if them, err = identity.ParseUser(user); err != nil {
		return self, them, wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	if them == self {
		return self, them, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a safety number is between you and another user")
	}
	return self, them, nil
}

// ownKey is this user's identity key, derived from the identity secret
// an active device holds.
func (c *Client) ownKey() (identity.PublicKey, error) {
	k, err := c.acct.IdentityPublic()
	if err != nil {
		return identity.PublicKey{}, fmt.Errorf("client.SafetyNumber: this device holds no identity key yet (is it approved?): %w", err)
	}
	return k, nil
}
