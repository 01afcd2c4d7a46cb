// Package oskeyring keeps profile keys in the operating system's keyring:
// the Secret Service over D-Bus on Linux and the BSDs (GNOME Keyring,
// KWallet, KeePassXC), the Keychain on macOS, the Credential Manager on
// Windows, through github.com/zalando/go-keyring. Every call has a time
// limit, because a locked keyring may wait for a prompt no one answers.
// client/store uses it through its Keyring interface (docs/security.md).
package oskeyring
