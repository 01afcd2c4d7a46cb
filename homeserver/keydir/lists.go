package keydir

import (
	"context"
	"errors"
	"maps"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// LocalDeviceLists answers the lists of local users, from the list cache
// and, for the users it does not hold, from one read transaction.
func (s *Directory) LocalDeviceLists(ctx context.Context, op string, users []string, res *wire.DeviceListsResult) error {
	var asked, locals []string
	for _, user := range users {
		local, err := s.LocalUser(op, user)
		if err != nil {
			res.Missing = append(res.Missing, missing(user, err))
			continue
		}
		asked, locals = append(asked, user), append(locals, local)
	}
	found, err := s.readLists(ctx, locals)
	if err != nil {
		return wire.Internal(op, err)
	}
	for i, local := range locals {
		e, ok := found[local]
		if !ok {
			res.Missing = append(res.Missing, missing(asked[i], wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device list for %s", asked[i])))
			continue
		}
		res.Lists = append(res.Lists, listResult(s.userAddress(local), e))
	}
	return nil
}

// readLists returns the identity keys and signed lists of local users (by
// name) that have both: from the cache, and the rest from the database in
// one read transaction (then cached).
func (s *Directory) readLists(ctx context.Context, locals []string) (map[string]cachedList, error) {
	found := make(map[string]cachedList, len(locals))
	var misses []string
	for _, local := range locals {
		if e, ok := s.lists.get(local); ok {
			found[local] = e
		} else {
			misses = append(misses, local)
		}
	}
	if len(misses) == 0 {
		return found, nil
	}
	gen := s.lists.generation()
	read := make(map[string]cachedList, len(misses))
	err := s.db.Read(ctx, func(tx *storage.Tx) error {
		for _, local := range misses {
			u, err := tx.UserByName(local)
			var e cachedList
			if err == nil {
				e.idKey, err = tx.IdentityKey(u.ID)
			}
			if err == nil {
				e.list, err = tx.DeviceList(u.ID)
			}
			if errors.Is(err, storage.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			read[local] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.lists.put(gen, read)
	maps.Copy(found, read)
	return found, nil
}

func missing(user string, err error) *wire.MissingDeviceList {
	return &wire.MissingDeviceList{User: user, Code: wire.KindOf(err), Message: wire.ToProto(err).GetMessage()}
}

// LocalDeviceList returns the identity key and signed list of a local user.
func (s *Directory) LocalDeviceList(ctx context.Context, op, user string) (*wire.DeviceListResult, error) {
	local, err := s.LocalUser(op, user)
	if err != nil {
		return nil, err
	}
	found, err := s.readLists(ctx, []string{local})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	e, ok := found[local]
	if !ok {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device list for %s", user)
	}
	return listResult(s.userAddress(local), e), nil
}

// LocalUser resolves a user address of this domain. Other domains need
// federation, which this server does not offer yet.
func (s *Directory) LocalUser(op, user string) (string, error) {
	u, err := identity.NormalizeUserIn(user, s.cfg.Domain)
	if err != nil {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid user address %q", user)
	}
	if u.Domain != s.cfg.Domain {
		return "", wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "user %s is on another server; federation is not available", u)
	}
	return u.Local, nil
}

// ClaimLocal hands out one KeyPackage per active device on each local
// user's signed list, all or nothing.
func (s *Directory) ClaimLocal(ctx context.Context, op string, users, excludeDevices []string) (*wire.ClaimResult, error) {
	return s.ClaimLocalFor(ctx, op, users, excludeDevices, false)
}

// ClaimLocalFor is ClaimLocal; with lastResortOnly (a requester over its
// claim budget) it hands out each device's last-resort package and spends
// no single-use one. A device without a last-resort package is then
// answered CODE_RATE_LIMITED (retry later), not drained.
func (s *Directory) ClaimLocalFor(ctx context.Context, op string, users, excludeDevices []string, lastResortOnly bool) (*wire.ClaimResult, error) {
	if n := len(users); n == 0 || n > 64 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "claim for 1..64 users")
	}
	exclude := map[string]bool{}
	for _, d := range excludeDevices {
		exclude[d] = true
	}
	var locals []string
	for _, u := range users {
		l, err := s.LocalUser(op, u)
		if err != nil {
			return nil, err
		}
		locals = append(locals, l)
	}
	res := &wire.ClaimResult{}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		res.Packages = nil
		for _, local := range locals {
			if err := s.claimForUser(op, tx, local, exclude, lastResortOnly, res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return res, nil
}

func (s *Directory) claimForUser(op string, tx *storage.Tx, local string, exclude map[string]bool, lastResortOnly bool, res *wire.ClaimResult) error {
	u, err := tx.UserByName(local)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %s", s.userAddress(local))
	} else if err != nil {
		return err
	}
	sl, err := tx.DeviceList(u.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "%s has no device list", s.userAddress(local))
	} else if err != nil {
		return err
	}
	l, err := identity.UnmarshalDeviceList(sl.List)
	if err != nil {
		return err
	}
	claimed, empty := 0, ""
	for _, ld := range l.Devices {
		addr := s.deviceAddress(local, ld.DeviceID)
		if exclude[addr] {
			continue
		}
		d, err := tx.Device(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.Status != storage.DeviceActive) {
			continue
		} else if err != nil {
			return err
		}
		if lastResortOnly {
			pkg, err := tx.LastResortKeyPackage(ld.DeviceID)
			if errors.Is(err, storage.ErrNotFound) {
				return wire.Errorf(op, wire.Code_CODE_RATE_LIMITED, "too many claims; device %s has no last-resort package: retry later", addr)
			} else if err != nil {
				return err
			}
			res.Packages = append(res.Packages, &wire.ClaimedKeyPackage{User: s.userAddress(local), DeviceId: ld.DeviceID, KeyPackage: pkg, LastResort: true})
			continue
		}
		pkg, last, err := tx.ClaimKeyPackage(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) {
			// A device with none (approved, but it never published any:
			// its owner stopped it before it did) is left out; it joins
			// conversations once it publishes. It must not make its user,
			// and every other user of the claim, unreachable.
			empty = addr
			continue
		} else if err != nil {
			return err
		}
		claimed++
		res.Packages = append(res.Packages, &wire.ClaimedKeyPackage{User: s.userAddress(local), DeviceId: ld.DeviceID, KeyPackage: pkg, LastResort: last})
	}
	if claimed == 0 && empty != "" {
		return wire.Errorf(op, wire.Code_CODE_NO_KEY_PACKAGES, "device %s has no key packages", empty)
	}
	return nil
}
