package fedlink

import (
	"context"

	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/media"
)

// Media across servers. A media reference names the server that holds the
// file (the uploader's). A device asks its own server for a range of it
// (DownloadMedia.server); its server reads the range from the holder with
// the signed FetchMedia query and passes it on, nothing kept. The holder
// answers any server its federation policy allows: as on one server, the
// media id is the capability and the bytes are ciphertext.

// fetchRemoteMedia reads a range of a media held by another server.
func (f *Queries) FetchMedia(ctx context.Context, r *wire.DownloadMedia) (*wire.MediaData, error) {
	const op = "homeserver.DownloadMedia"
	if err := identity.CheckDomain(r.GetServer()); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "bad server %q", r.GetServer())
	}
	if !media.ValidID(r.GetMediaId()) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	}
	length := uint64(f.cfg.MaxMediaChunk)
	if l := r.GetLength(); l > 0 && l < length {
		length = l
	}
	res, err := f.query(ctx, op, r.GetServer(), &fedwire.Query{Body: &fedwire.Query_FetchMedia{FetchMedia: &fedwire.FetchMedia{
		MediaId: r.GetMediaId(), Offset: r.GetOffset(), Length: length}}})
	if err != nil {
		return nil, err
	}
	mc := res.GetMedia()
	if mc == nil || mc.GetOffset() != r.GetOffset() || uint64(len(mc.GetData())) > length ||
		mc.GetOffset()+uint64(len(mc.GetData())) > mc.GetTotalSize() {
		return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered the media range malformed", r.GetServer())
	}
	return &wire.MediaData{Data: mc.GetData(), TotalSize: mc.GetTotalSize(), Offset: mc.GetOffset()}, nil
}

// answerFetchMedia answers another server's FetchMedia query.
func (f *Queries) answerFetchMedia(ctx context.Context, q *fedwire.FetchMedia) (*fedwire.QueryResult, error) {
	d, err := f.media.Download(ctx, &wire.DownloadMedia{MediaId: q.GetMediaId(), Offset: q.GetOffset(), Length: q.GetLength()})
	if err != nil {
		return nil, err
	}
	return &fedwire.QueryResult{Body: &fedwire.QueryResult_Media{Media: &fedwire.MediaChunk{
		Data: d.GetData(), TotalSize: d.GetTotalSize(), Offset: d.GetOffset()}}}, nil
}
