package homeserver

import (
	"context"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/mediastore"
	"hearth/homeserver/wire"
)

// uploadMedia starts or continues an upload of the device.
func uploadMedia(ctx context.Context, m *mediastore.Store, userID int64, deviceID string, r *wire.UploadMedia) (*wire.ServerFrame, error) {
	var up *wire.UploadMediaOK
	var err error
	if r.GetUploadId() == "" {
		up, err = m.Start(ctx, userID, deviceID, r)
	} else {
		up, err = m.Append(ctx, deviceID, r)
	}
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_UploadMedia{UploadMedia: up}}, nil
}

// downloadMedia reads a range of a media held here, or by another server
// through federation.
func downloadMedia(ctx context.Context, m *mediastore.Store, fed *fedlink.Link, domain string, r *wire.DownloadMedia) (*wire.ServerFrame, error) {
	if srv := r.GetServer(); srv != "" && srv != domain {
		if fed == nil {
			return nil, errFedOff
		}
		d, err := fed.Queries.FetchMedia(ctx, r)
		if err != nil {
			return nil, err
		}
		return &wire.ServerFrame{Body: &wire.ServerFrame_MediaData{MediaData: d}}, nil
	}
	d, err := m.Download(ctx, r)
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

// MediaStore is the server's media files (for backups: homeserver/backup).
func (s *Server) MediaStore() *mediastore.Store { return s.mediaSt }
