package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Settings (docs/receipts.md) are this user's privacy choices, kept on
// each device and synced to the user's other devices end to end
// encrypted: a change is an MLS application message with the full set
// ({"set":{NAME:{"v":VALUE,"at":MS}}}) in the settings group, an ordinary
// group whose only members are this user's devices, created by the first
// change. Each name takes the value with the latest "at" (ties: the
// greater value), so devices agree whatever order changes arrive in.
// Settings messages from other users are ignored.

// SettingValues lists every setting this version knows and its values;
// the first value is the default. Another file adds its setting with an
// init function (settingValues["NAME"] = []string{...}).
var settingValues = map[string][]string{
	"read-receipts": {"on", "off"}, // off: no read receipts sent or shown in 1:1s (groups keep them)
	"typing":        {"on", "off"}, // off: no typing indicators sent or shown
}

// settingsGroupName is the name of the settings group.
const settingsGroupName = "hearth settings (your devices)"

// setting is one setting's value and when (ms) a device chose it.
type setting struct {
	Value string `json:"v"`
	At    int64  `json:"at"`
}

const (
	settingsName     = "settings"
	settingsConvName = "settings-conv"
	maxSettings      = 32
	maxSettingLen    = 64
)

// checkSettings validates received settings (names and values this
// version may not know are kept, for a later version).
func checkSettings(set map[string]setting) error {
	if len(set) > maxSettings {
		return fmt.Errorf("settings: %d entries, at most %d", len(set), maxSettings)
	}
	for name, s := range set {
		if name == "" || len(name) > maxSettingLen || !settingToken(name) {
			return fmt.Errorf("settings: bad name %q", name)
		}
		if s.Value == "" || len(s.Value) > maxSettingLen || !settingToken(s.Value) {
			return fmt.Errorf("settings: bad value for %s", name)
		}
		if s.At < 0 || s.At > maxSenderTime {
			return fmt.Errorf("settings: time of %s out of range", name)
		}
	}
	return nil
}

// settingToken reports whether s is lowercase letters, digits and dashes.
func settingToken(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func loadSettings(tx *store.Tx) map[string]setting {
	set := map[string]setting{}
	if raw := tx.Meta(settingsName); raw != nil {
		if err := json.Unmarshal(raw, &set); err != nil {
			return map[string]setting{} // unreadable: defaults (never written so)
		}
	}
	return set
}

func saveSettings(tx *store.Tx, set map[string]setting) error {
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return tx.PutMeta(settingsName, b)
}

// settingIn is the value of setting name on this device.
func settingIn(tx *store.Tx, name string) string {
	if s, ok := loadSettings(tx)[name]; ok && slices.Contains(settingValues[name], s.Value) {
		return s.Value
	}
	return settingValues[name][0]
}

func readReceiptsOn(tx *store.Tx) bool { return settingIn(tx, "read-receipts") == "on" }

// newer reports whether a replaces b (later, or as late and greater).
func (a setting) newer(b setting) bool {
	return a.At > b.At || a.At == b.At && a.Value > b.Value
}

// applySettings merges settings received in conv from user from.
func applySettings(tx *store.Tx, conv, me, from string, in map[string]setting, log *slog.Logger) error {
	if from != me {
		log.Warn("ignoring settings sent by another user", "conversation", conv, "sender", from)
		return nil
	}
	set := loadSettings(tx)
	for name, s := range in {
		if s.newer(set[name]) {
			set[name] = s
		}
	}
	if cur := tx.Meta(settingsConvName); cur == nil || conv < string(cur) {
		// Two devices that each created a settings group agree on one.
		if err := tx.PutMeta(settingsConvName, []byte(conv)); err != nil {
			return err
		}
	}
	return saveSettings(tx, set)
}

// Settings returns every setting this version knows with its value on
// this device (the default when never set).
func (c *Client) Settings() (map[string]string, error) {
	out := map[string]string{}
	err := c.st.View(func(tx *store.Tx) error {
		for name := range settingValues {
			out[name] = settingIn(tx, name)
		}
		return nil
	})
	return out, err
}

// SettingNames returns the settings this version knows, sorted.
func SettingNames() []string {
	var out []string
	for name := range settingValues {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// SettingValues returns the values setting name takes (nil if unknown).
func SettingValues(name string) []string { return slices.Clone(settingValues[name]) }

// ErrSettingNotSynced is wrapped when a setting was changed on this device
// but could not be sent to the user's other devices yet.
var ErrSettingNotSynced = fmt.Errorf("saved on this device, not yet sent to your other devices")

// SetSetting sets name to value on this device and sends the settings to
// this user's other devices (creating the settings group on first use).
// The change holds on this device even when sending fails; the error then
// wraps ErrSettingNotSynced, and the next change sends the full set.
func (c *Client) SetSetting(ctx context.Context, name, value string) error {
	const op = "client.SetSetting"
	values, ok := settingValues[name]
	if !ok {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "unknown setting %q (known: %v)", name, SettingNames())
	}
	if !slices.Contains(values, value) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s must be one of %v, not %q", name, values, value)
	}
	if _, err := c.user(); err != nil {
		return err
	}
	var conv string
	err := c.st.Update(func(tx *store.Tx) error {
		set := loadSettings(tx)
		at := max(c.cfg.Now().UnixMilli(), set[name].At+1)
		set[name] = setting{Value: value, At: at}
		conv = string(tx.Meta(settingsConvName))
		return saveSettings(tx, set)
	})
	if err != nil {
		return err
	}
	if conv == "" {
		id, err := c.groups.Create(ctx, settingsGroupName, nil)
		if err != nil {
			// Registered at the hub but not finished (say, the control
			// message is still queued): keep it rather than make another.
			var registered bool
			if id != "" {
				c.st.View(func(tx *store.Tx) error { registered = tx.Meta(convstate.RegisteredName(id)) != nil; return nil })
			}
			if registered {
				c.st.Update(func(tx *store.Tx) error {
					if tx.Meta(settingsConvName) == nil {
						return tx.PutMeta(settingsConvName, []byte(id))
					}
					return nil
				})
			}
			return fmt.Errorf("%s: %w: creating the settings group: %w", op, ErrSettingNotSynced, err)
		}
		conv = id
		err = c.st.Update(func(tx *store.Tx) error {
			if cur := tx.Meta(settingsConvName); cur != nil {
				conv = string(cur) // learned meanwhile from another device
				return nil
			}
			return tx.PutMeta(settingsConvName, []byte(id))
		})
		if err != nil {
			return err
		}
	}
	return c.sendSettings(ctx, op, conv)
}

// sendSettings sends the full set of this device's settings to the
// settings group conv and waits until the hub accepted it.
func (c *Client) sendSettings(ctx context.Context, op, conv string) error {
	var msg []byte
	err := c.st.View(func(tx *store.Tx) (err error) {
		msg, err = json.Marshal(body{V: 1, TS: c.cfg.Now().UnixMilli(), Set: loadSettings(tx)})
		return err
	})
	if err != nil {
		return err
	}
	id, err := c.enqueue(op, conv, store.OutboxItem{Body: msg}, nil)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, ErrSettingNotSynced, err)
	}
	if err := c.Flush(ctx, id); err != nil {
		return fmt.Errorf("%s: %w (it stays queued): %w", op, ErrSettingNotSynced, err)
	}
	return nil
}

// settingsAfterApproval sends the settings again once a device this device
// approved was added to the settings group, so that it starts with them.
func (c *Client) settingsAfterApproval(ctx context.Context) {
	var conv string
	var n int
	c.st.View(func(tx *store.Tx) error {
		conv, n = string(tx.Meta(settingsConvName)), len(loadSettings(tx))
		return nil
	})
	if conv == "" || n == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, addApprovedWait)
	defer cancel()
	if err := c.sendSettings(sctx, "client.Approve", conv); err != nil {
		c.log.Warn("settings not yet sent to the new device", "err", err)
	}
}

// adoptSettingsGroup records conv as the settings group when it is one:
// named so, with only this user's devices as members. Of two, the
// smaller id wins, as in applySettings.
func adoptSettingsGroup(tx *store.Tx, conv, name string, members []string, me string) (bool, error) {
	if name != settingsGroupName || len(convstate.PeersOf(members, me)) > 0 {
		return false, nil
	}
	if cur := tx.Meta(settingsConvName); cur == nil || conv < string(cur) {
		return true, tx.PutMeta(settingsConvName, []byte(conv))
	}
	return true, nil
}

// isSettingsGroup reports whether conv is this user's settings group.
func isSettingsGroup(tx *store.Tx, conv string) bool {
	return string(tx.Meta(settingsConvName)) == conv
}
