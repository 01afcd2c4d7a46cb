package homeserver

import (
	"context"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/keydir"
	"hearth/homeserver/wire"
)

// maxFetchLists is the most users one FetchDeviceLists may name.
const maxFetchLists = 256

// fetchDeviceLists answers many users' signed device lists in one round
// trip: local users from one read transaction, remote users through the
// federation query of FetchDeviceList, one domain after another user by
// user, several domains at once. A user without a list is reported in
// missing with the code FetchDeviceList would have failed with; once a
// domain is unreachable, its other users are reported without asking.
func fetchDeviceLists(ctx context.Context, dir *keydir.Directory, fed *fedlink.Link, m *wire.FetchDeviceLists) (*wire.ServerFrame, error) {
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
		if fed != nil {
			if d, ok := fed.Queries.RemoteDomain(u); ok {
				remote[d] = append(remote[d], u)
				continue
			}
		}
		local = append(local, u)
	}
	if err := dir.LocalDeviceLists(ctx, op, local, res); err != nil {
		return nil, err
	}
	if len(remote) > 0 {
		fed.Queries.RemoteDeviceLists(ctx, remote, res)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceLists{DeviceLists: res}}, nil
}

func fetchDeviceList(ctx context.Context, dir *keydir.Directory, fed *fedlink.Link, m *wire.FetchDeviceList) (*wire.ServerFrame, error) {
	const op = "homeserver.FetchDeviceList"
	if fed != nil {
		if d, ok := fed.Queries.RemoteDomain(m.GetUser()); ok {
			r, err := fed.Queries.FetchRemoteList(ctx, d, m.GetUser())
			if err != nil {
				return nil, err
			}
			return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceList{DeviceList: r}}, nil
		}
	}
	r, err := dir.LocalDeviceList(ctx, op, m.GetUser())
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceList{DeviceList: r}}, nil
}

// claimKeyPackages hands out one KeyPackage per active device on each
// user's signed list, all or nothing.
func claimKeyPackages(ctx context.Context, dir *keydir.Directory, fed *fedlink.Link, requester string, m *wire.ClaimKeyPackages) (*wire.ServerFrame, error) {
	const op = "homeserver.ClaimKeyPackages"
	if n := len(m.GetUsers()); n == 0 || n > 64 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "claim for 1..64 users")
	}
	if len(m.GetExcludeDevices()) > 1024 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "too many excluded devices")
	}
	users := m.GetUsers()
	var remote map[string][]string
	if fed != nil {
		users, remote = fed.Queries.SplitUsers(m.GetUsers())
	}
	res := &wire.ClaimResult{}
	if len(users) > 0 {
		r, err := dir.ClaimLocal(ctx, op, users, m.GetExcludeDevices())
		if err != nil {
			return nil, err
		}
		res.Packages = r.Packages
	}
	for d, us := range remote {
		r, err := fed.Queries.ClaimRemote(ctx, d, us, m.GetExcludeDevices(), requester)
		if err != nil {
			return nil, err
		}
		res.Packages = append(res.Packages, r.Packages...)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Claim{Claim: res}}, nil
}
