package homeserver

import (
	"context"
	"errors"
	"sync"

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
			if d, ok := ss.s.fed.remoteDomain(u); ok {
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
		ss.s.fed.remoteDeviceLists(ss.ctx, remote, res)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceLists{DeviceLists: res}}, nil
}

func missing(user string, err error) *wire.MissingDeviceList {
	return &wire.MissingDeviceList{User: user, Code: wire.KindOf(err), Message: wire.ToProto(err).GetMessage()}
}

// localDeviceLists reads the lists of local users in one transaction.
func (s *Server) localDeviceLists(ctx context.Context, op string, users []string, res *wire.DeviceListsResult) error {
	if len(users) == 0 {
		return nil
	}
	err := s.db.Read(ctx, func(tx *storage.Tx) error {
		for _, user := range users {
			local, err := s.localUser(op, user)
			if err != nil {
				res.Missing = append(res.Missing, missing(user, err))
				continue
			}
			u, err := tx.UserByName(local)
			var idKey []byte
			var sl *storage.SignedList
			if err == nil {
				idKey, err = tx.IdentityKey(u.ID)
			}
			if err == nil {
				sl, err = tx.DeviceList(u.ID)
			}
			if errors.Is(err, storage.ErrNotFound) {
				res.Missing = append(res.Missing, missing(user, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device list for %s", user)))
				continue
			} else if err != nil {
				return err
			}
			res.Lists = append(res.Lists, &wire.DeviceListResult{User: s.userAddress(local), IdentityKey: idKey,
				DeviceList: &wire.SignedDeviceList{List: sl.List, Signature: sl.Signature}})
		}
		return nil
	})
	if err != nil {
		return internal(op, err)
	}
	return nil
}

// maxListDomains is how many remote servers one FetchDeviceLists asks at once.
const maxListDomains = 4

// remoteDeviceLists fetches remote users' lists, domain by domain.
func (f *fed) remoteDeviceLists(ctx context.Context, remote map[string][]string, res *wire.DeviceListsResult) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxListDomains)
	for d, users := range remote {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var down error
			for _, u := range users {
				var r *wire.DeviceListResult
				err := down
				if err == nil {
					r, err = f.fetchRemoteList(ctx, d, u)
				}
				mu.Lock()
				if err != nil {
					res.Missing = append(res.Missing, missing(u, err))
				} else {
					res.Lists = append(res.Lists, r)
				}
				mu.Unlock()
				if wire.Is(err, wire.Code_CODE_UNAVAILABLE) || ctx.Err() != nil {
					down = err
				}
			}
		})
	}
	wg.Wait()
}
