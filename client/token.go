package client

import (
	"context"
	"errors"
	"time"
)

// AccessToken returns this device's access token and its expiry for
// scripts that call the server's REST endpoints: the stored one when it
// stays valid for at least minValid, else a fresh one (the session
// connects and trades the refresh token, which rotates it in the profile).
func (c *Client) AccessToken(ctx context.Context, minValid time.Duration) (string, time.Time, error) {
	a, err := c.acct.Account()
	if err != nil {
		return "", time.Time{}, err
	}
	if a.AccessToken == "" {
		return "", time.Time{}, errors.New("client: this profile is not logged in")
	}
	if c.cfg.Now().Add(minValid).Before(a.AccessExpires) {
		return a.AccessToken, a.AccessExpires, nil
	}
	s, err := c.link.session(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.RefreshToken(ctx); err != nil {
		return "", time.Time{}, err
	}
	if a, err = c.acct.Account(); err != nil {
		return "", time.Time{}, err
	}
	return a.AccessToken, a.AccessExpires, nil
}
