package fedlink

import (
	"context"
	"sync"

	"hearth/homeserver/wire"
)

// maxListDomains is how many remote servers one FetchDeviceLists asks at once.
const maxListDomains = 4

// RemoteDeviceLists fetches remote users' lists, domain by domain.
func (f *Queries) RemoteDeviceLists(ctx context.Context, remote map[string][]string, res *wire.DeviceListsResult) {
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
					r, err = f.FetchRemoteList(ctx, d, u)
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

func missing(user string, err error) *wire.MissingDeviceList {
	return &wire.MissingDeviceList{User: user, Code: wire.KindOf(err), Message: wire.ToProto(err).GetMessage()}
}
