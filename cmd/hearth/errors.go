package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"hearth/client"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Errors reach a person as one sentence with what to do next: the kinds a
// user can act on get their own words, and every other error loses the Go
// operation names it went through ("client.Hello: homeserver.Hello: ...").
// --verbose prints the whole chain as it is.

// verboseErrors reports whether the command line asks for whole error
// chains (the chat command's --verbose).
func verboseErrors(args []string) bool {
	return slices.Contains(args, "--verbose") || slices.Contains(args, "--verbose=true")
}

// errorText is what main prints after "hearth: " for err.
func errorText(err error, args []string) string {
	if verboseErrors(args) {
		return err.Error()
	}
	profile := profileArg(args)
	if path, ok := store.DamagedFile(err); ok {
		return fmt.Sprintf("the profile store %s is damaged and cannot be read; "+
			"run \"hearth chat --profile %s doctor\" to check it and \"hearth chat --profile %s doctor --repair\" to repair it or move it aside "+
			"(--verbose shows the details)", path, profile, profile)
	}
	if errors.Is(err, client.ErrIdentityChanged) {
		return identityChangedText(err)
	}
	switch wire.KindOf(err) {
	case wire.Code_CODE_USER_DISABLED:
		if strings.Contains(err.Error(), "account deleted") {
			return "this account was deleted from its server; this profile cannot be used any more (ask an admin for a new account, then log in with a new --profile)"
		}
		return "this account is disabled on its server; an admin can enable it again (hearth admin user enable NAME), then this profile works again"
	case wire.Code_CODE_DEVICE_REVOKED:
		return "this device was revoked and can no longer connect; log in again with a new --profile (another of your devices then approves it)"
	case wire.Code_CODE_UNAUTHENTICATED:
		if errors.Is(err, client.ErrSessionEnded) {
			return "this device's login is no longer valid (its account was deleted or the device removed); log in again with a new --profile"
		}
	}
	return plainError(err)
}

// goOpPrefix matches the Go operation names errors are wrapped with:
// "client.Hello: ", "homeserver.checkAccessToken: ", "client: ", "store: ".
var goOpPrefix = regexp.MustCompile(`\b(?:client|homeserver|store|session|transport|directory|account|outbox|transfer|mlsgroup|e2ee|wire)(?:\.[A-Za-z][A-Za-z0-9]*)?: `)

// plainError is err's text without operation names.
func plainError(err error) string {
	s := goOpPrefix.ReplaceAllString(err.Error(), "")
	if s == "" {
		return err.Error()
	}
	return s
}

// changedUser finds the user named in an identity.ErrIdentityChanged text:
// "... changed: USER now signs with ...".
var changedUser = regexp.MustCompile(`changed: (\S+@\S+) now signs with`)

// identityChangedText explains a changed identity key and how to accept it.
func identityChangedText(err error) string {
	user := "USER@DOMAIN"
	if m := changedUser.FindStringSubmatch(err.Error()); m != nil {
		user = m[1]
	}
	return fmt.Sprintf("%[1]s's identity key changed: either %[1]s reset the account (a new first login) or someone is impersonating them; "+
		"nothing is sent to or accepted from %[1]s until you compare safety numbers with them in person or on a call "+
		"(hearth chat safety-number %[1]s) and, if they match, accept the new key (hearth chat trust %[1]s)", user)
}

// profileArg is the --profile value on the command line ("PDIR" if none).
func profileArg(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--profile="); ok {
			return v
		}
		if a == "--profile" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return "PDIR"
}
