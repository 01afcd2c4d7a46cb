package client

import (
	"context"
	"fmt"
	"time"

	"hearth/client/account"
	"hearth/client/store"
)

// This device's account and the user's devices (client/account).

// LoginParams are what `hearth chat login` collects.
type LoginParams = account.LoginParams

// LoginResult says what Login did.
type LoginResult = account.LoginResult

// Device is one of the user's devices.
type Device = account.Device

// Account returns the profile's account.
func (c *Client) Account() (store.Account, error) { return c.acct.Account() }

// Login creates this profile's device on the server. The first device of a
// user creates the identity key and publishes it with the first signed
// device list; any later device is pending until approved by another
// device (WaitApproval) or by the recovery key.
func (c *Client) Login(ctx context.Context, p LoginParams) (LoginResult, error) {
	return c.acct.Login(ctx, p)
}

// WaitApproval polls every interval until another device approved this
// pending device, then activates it.
func (c *Client) WaitApproval(ctx context.Context, every time.Duration) error {
	return c.acct.WaitApproval(ctx, every)
}

// Withdraw removes this pending device from the server and logs the
// profile out, so that the next Login starts afresh (a login that gave up
// waiting for approval).
func (c *Client) Withdraw(ctx context.Context) error { return c.acct.Withdraw(ctx) }

// Approve approves a pending device of the same user from its link code
// and adds it to this device's conversations.
func (c *Client) Approve(ctx context.Context, code string) (deviceID string, err error) {
	return c.acct.Approve(ctx, code)
}

// Devices lists the user's devices.
func (c *Client) Devices(ctx context.Context) ([]Device, error) { return c.acct.Devices(ctx) }

// Revoke revokes one of the user's devices with a new signed list without
// it, and removes it from this device's conversations.
func (c *Client) Revoke(ctx context.Context, deviceID string) error {
	return c.acct.Revoke(ctx, deviceID)
}

// EncryptProfile encrypts this unencrypted profile with a key derived
// from passphrase (store.Encrypt); later opens need Config.Passphrase.
func (c *Client) EncryptProfile(passphrase []byte) error {
	if err := c.st.Encrypt(passphrase); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// EncryptProfileKeyring encrypts this unencrypted profile with a new
// random key kept in kr, the OS keyring (store.EncryptKeyring); later
// opens need Config.Keyring.
func (c *Client) EncryptProfileKeyring(kr store.Keyring) error {
	if err := c.st.EncryptKeyring(kr); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// ProfileProtection says how the profile is kept at rest: "none",
// "passphrase" or "keyring".
func (c *Client) ProfileProtection() string { return c.st.Protection() }

// PendingDevice is a device waiting for approval, as ApproveConfirm shows it.
type PendingDevice = account.PendingDevice

// ApproveConfirm is Approve that first passes the pending device (its
// name and key fingerprint, after the code's link key was checked) to
// confirm; an error from confirm approves nothing.
func (c *Client) ApproveConfirm(ctx context.Context, code string, confirm func(PendingDevice) error) (deviceID string, err error) {
	return c.acct.ApproveConfirm(ctx, code, confirm)
}

// Fingerprint is this device's signature key fingerprint
// (account.KeyFingerprint), which an approving device shows too.
func (c *Client) Fingerprint() (string, error) { return c.acct.Fingerprint() }
