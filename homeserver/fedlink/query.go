package fedlink

import (
	"context"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// RemoteDomain reports the domain of a user address that is not ours.
func (f *Queries) RemoteDomain(user string) (string, bool) {
	u, err := identity.NormalizeUserIn(user, f.domain)
	if err != nil || u.Domain == f.domain {
		return "", false
	}
	return u.Domain, true
}

// SplitUsers separates local users from remote ones (by domain).
func (f *Queries) SplitUsers(users []string) (local []string, remote map[string][]string) {
	for _, u := range users {
		if d, ok := f.RemoteDomain(u); ok {
			if remote == nil {
				remote = map[string][]string{}
			}
			remote[d] = append(remote[d], u)
			continue
		}
		local = append(local, u)
	}
	return local, remote
}

// query sends a signed query and maps a refusal to a wire error.
func (f *Queries) query(ctx context.Context, op, domain string, q *fedwire.Query) (*fedwire.QueryResult, error) {
	if !f.policy.Allowed(domain) {
		return nil, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", domain)
	}
	q.Origin, q.Destination, q.QueryId, q.OriginTimeMs = f.domain, domain, newEnvelopeID("q-"), f.nowMs()
	sq, err := federation.SignQuery(f.pb.SigningKey(), q)
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	if err := f.downErr(op, domain); err != nil {
		return nil, err
	}
	res, err := f.client.Query(ctx, domain, sq)
	if err != nil {
		return nil, f.queryFailed(ctx, op, domain, err)
	}
	f.answered(domain)
	if res.Code != fedwire.Code_CODE_OK {
		return nil, wire.Errorf(op, wireKind(res.Code), "%s: %s", domain, res.Message)
	}
	return res, nil
}

// FetchRemoteList fetches a remote user's signed device list and records its version.
func (f *Queries) FetchRemoteList(ctx context.Context, domain, user string) (*wire.DeviceListResult, error) {
	const op = "homeserver.FetchDeviceList"
	res, err := f.query(ctx, op, domain, &fedwire.Query{Body: &fedwire.Query_FetchDeviceList{FetchDeviceList: &fedwire.FetchDeviceList{User: user}}})
	if err != nil {
		return nil, err
	}
	dl := res.GetDeviceList()
	if u, err := identity.ParseUser(dl.GetUser()); dl == nil || err != nil || u.Domain != domain {
		return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered without a device list of its own user", domain)
	}
	if l, err := identity.UnmarshalDeviceList(dl.DeviceList); err == nil {
		err := f.db.Write(ctx, func(tx *storage.Tx) error {
			return tx.PutRemoteList(&storage.RemoteList{User: dl.User, Version: l.Version, IdentityKey: dl.IdentityKey,
				List: dl.DeviceList, Signature: dl.Signature, UpdatedMs: f.nowMs()})
		})
		if err != nil {
			f.log.Warn("federation: record remote device list", "user", dl.User, "err", err)
		}
	}
	return &wire.DeviceListResult{User: dl.User, IdentityKey: dl.IdentityKey,
		DeviceList: &wire.SignedDeviceList{List: dl.DeviceList, Signature: dl.Signature}}, nil
}

// resyncList fetches the full list of a user after a version gap.
func (f *Queries) resyncList(user string) {
	d, ok := f.RemoteDomain(user)
	if !ok {
		return
	}
	if _, err := f.FetchRemoteList(context.Background(), d, user); err != nil {
		f.log.Warn("federation: device list resync failed", "user", user, "err", err)
	}
}

// ClaimRemote claims KeyPackages of users on domain for requester.
func (f *Queries) ClaimRemote(ctx context.Context, domain string, users, exclude []string, requester string) (*wire.ClaimResult, error) {
	const op = "homeserver.ClaimKeyPackages"
	res, err := f.query(ctx, op, domain, &fedwire.Query{Body: &fedwire.Query_ClaimKeyPackages{ClaimKeyPackages: &fedwire.ClaimKeyPackages{
		Users: users, ExcludeDevices: exclude, Requester: requester}}})
	if err != nil {
		return nil, err
	}
	out := &wire.ClaimResult{}
	for _, p := range res.GetClaim().GetPackages() {
		if u, err := identity.ParseUser(p.User); err != nil || u.Domain != domain {
			return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered for another domain's user", domain)
		}
		out.Packages = append(out.Packages, &wire.ClaimedKeyPackage{User: p.User, DeviceId: p.DeviceId, KeyPackage: p.KeyPackage, LastResort: p.LastResort})
	}
	return out, nil
}

// Answer answers a verified query about this server's users.
func (f *Queries) Answer(ctx context.Context, q *fedwire.Query) *fedwire.QueryResult {
	fail := func(err error) *fedwire.QueryResult {
		return &fedwire.QueryResult{Code: fedKind(wire.KindOf(err)), Message: err.Error()}
	}
	const op = "homeserver.federation.Query"
	switch b := q.Body.(type) {
	case *fedwire.Query_FetchDeviceList:
		r, err := f.dir.LocalDeviceList(ctx, op, b.FetchDeviceList.User)
		if err != nil {
			return fail(err)
		}
		return &fedwire.QueryResult{Body: &fedwire.QueryResult_DeviceList{DeviceList: &fedwire.DeviceListResult{
			User: r.User, IdentityKey: r.IdentityKey, DeviceList: r.DeviceList.GetList(), Signature: r.DeviceList.GetSignature()}}}
	case *fedwire.Query_ClaimKeyPackages:
		m := b.ClaimKeyPackages
		if d, err := identity.ParseDevice(m.Requester); err != nil || d.User.Domain != q.Origin {
			return fail(wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "requester must be a device of %s", q.Origin))
		}
		// Each claimed user costs one token of the origin's budget and
		// one of the requesting user's; over either, the claim gets
		// last-resort packages, so a remote server cannot drain a user's
		// single-use packages, and the claim still gets an answer.
		d, _ := identity.ParseDevice(m.Requester)
		n := float64(len(m.Users))
		okOrigin, _ := f.claimOrigin.Take(q.Origin, n)
		okUser, _ := f.claimRequester.Take(d.User.String(), n)
		limited := !okOrigin || !okUser
		if limited {
			f.log.Info("federation: KeyPackage claims over budget; last-resort packages only", "origin", q.Origin, "requester", d.User.String(), "users", len(m.Users))
		}
		res, err := f.dir.ClaimLocalFor(ctx, op, m.Users, m.ExcludeDevices, limited)
		if err != nil {
			return fail(err)
		}
		out := &fedwire.ClaimResult{}
		for _, p := range res.Packages {
			out.Packages = append(out.Packages, &fedwire.ClaimedKeyPackage{User: p.User, DeviceId: p.DeviceId, KeyPackage: p.KeyPackage, LastResort: p.LastResort})
		}
		return &fedwire.QueryResult{Body: &fedwire.QueryResult_Claim{Claim: out}}
	case *fedwire.Query_GetPresence:
		res, err := f.answerPresence(ctx, q.Origin, b.GetPresence)
		if err != nil {
			return fail(err)
		}
		return res
	case *fedwire.Query_FetchMedia:
		res, err := f.answerFetchMedia(ctx, b.FetchMedia)
		if err != nil {
			return fail(err)
		}
		return res
	}
	return fail(wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "unknown query"))
}
