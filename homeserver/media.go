package homeserver

import (
	"context"

	"hearth/homeserver/wire"
)

func (ss *session) uploadMedia(r *wire.UploadMedia) (*wire.ServerFrame, error) {
	m := ss.s.mediaSt
	var up *wire.UploadMediaOK
	var err error
	if r.GetUploadId() == "" {
		up, err = m.Start(ss.ctx, ss.userID, ss.deviceID, r)
	} else {
		up, err = m.Append(ss.ctx, ss.deviceID, r)
	}
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_UploadMedia{UploadMedia: up}}, nil
}

func (ss *session) downloadMedia(r *wire.DownloadMedia) (*wire.ServerFrame, error) {
	if srv := r.GetServer(); srv != "" && srv != ss.s.cfg.Domain {
		if ss.s.fed == nil {
			return nil, errFedOff
		}
		d, err := ss.s.fed.Queries.FetchMedia(ss.ctx, r)
		if err != nil {
			return nil, err
		}
		return &wire.ServerFrame{Body: &wire.ServerFrame_MediaData{MediaData: d}}, nil
	}
	m := ss.s.mediaSt
	d, err := m.Download(ss.ctx, r)
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_MediaData{MediaData: d}}, nil
}

// RunMediaJanitor deletes expired media and abandoned uploads with their
// files (mediastore.Store.RunJanitor); it returns how many abandoned
// uploads it removed. The janitor loop calls it; tests call it with their
// clock.
func (s *Server) RunMediaJanitor(ctx context.Context) (int, error) { return s.mediaSt.RunJanitor(ctx) }
