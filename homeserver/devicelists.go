package homeserver

import (
	"context"
	"errors"
	"maps"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// maxFetchLists is the most users one FetchDeviceLists may name.
const maxFetchLists = 256

// fetchDeviceLists answers many users' signed device lists in one round
// trip: local users from one read transaction, remote users through the
// federation query of FetchDeviceList, one domain after another user by
// user, several domains at once. A user without a list is reported in
// missing with the code FetchDeviceList would have failed with; once a
// domain is unreachable, its other users are reported without asking.
func (ss *session) fetchDeviceLists(m *wire.FetchDeviceLists) (*wire.ServerFrame, error) {
	const op = "homeserver.FetchDeviceLists"
	users := m.GetUsers()
	if len(users) == 0 || len(users) > maxFetchLists {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "fetch the lists of 1..%d users", maxFetchLists)
	}
	res := &wire.DeviceListsResult{}
	seen := map[string]bool{}
	var local []string
	remote := map[string][]string{}
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		if ss.s.fed != nil {
			if d, ok := ss.s.fed.Queries.RemoteDomain(u); ok {
				remote[d] = append(remote[d], u)
				continue
			}
		}
		local = append(local, u)
	}
	if err := ss.s.localDeviceLists(ss.ctx, op, local, res); err != nil {
		return nil, err
	}
	if len(remote) > 0 {
		ss.s.fed.Queries.RemoteDeviceLists(ss.ctx, remote, res)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceLists{DeviceLists: res}}, nil
}

func missing(user string, err error) *wire.MissingDeviceList {
	return &wire.MissingDeviceList{User: user, Code: wire.KindOf(err), Message: wire.ToProto(err).GetMessage()}
}

// localDeviceLists answers the lists of local users, from the list cache
// and, for the users it does not hold, from one read transaction.
func (s *Server) localDeviceLists(ctx context.Context, op string, users []string, res *wire.DeviceListsResult) error {
	var asked, locals []string
	for _, user := range users {
		local, err := s.localUser(op, user)
		if err != nil {
			res.Missing = append(res.Missing, missing(user, err))
			continue
		}
		asked, locals = append(asked, user), append(locals, local)
	}
	found, err := s.readLists(ctx, locals)
	if err != nil {
		return internal(op, err)
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
func (s *Server) readLists(ctx context.Context, locals []string) (map[string]cachedList, error) {
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
