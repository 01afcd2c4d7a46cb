package mediastore

import "time"

// Config bounds media uploads. The bytes are stored as files under Dir;
// their metadata in the database.
type Config struct {
	Dir      string // default: "media" beside the database file
	MaxBytes int64  // largest upload (ciphertext bytes); default 100 MiB
	// Quota bounds the bytes one user's uploads (complete or in progress)
	// may hold in total. Default 1 GiB; < 0: no quota.
	Quota         int64
	MaxOpen       int           // uploads in progress per device; default 8
	UploadTimeout time.Duration // an incomplete upload is removed this long after it started; default 24h
	JanitorEvery  time.Duration // how often abandoned uploads are looked for; default 10m; < 0: no loop
	MaxChunkBytes int           // data per UploadMedia / MediaData; default 256 KiB (less if MaxFrame is small)
	// Retention: a complete media is deleted this long after it completed.
	// Default 30 days; < 0: kept until its uploader is deleted.
	Retention time.Duration
}

// WithDefaults fills in the defaults; maxFrame bounds MaxChunkBytes.
func (m Config) WithDefaults(maxFrame int) Config {
	if m.MaxBytes <= 0 {
		m.MaxBytes = 100 << 20
	}
	if m.Quota == 0 {
		m.Quota = 1 << 30
	}
	if m.MaxOpen <= 0 {
		m.MaxOpen = 8
	}
	if m.UploadTimeout <= 0 {
		m.UploadTimeout = 24 * time.Hour
	}
	if m.JanitorEvery == 0 {
		m.JanitorEvery = 10 * time.Minute
	}
	if m.MaxChunkBytes <= 0 {
		m.MaxChunkBytes = 256 << 10
	}
	if m.Retention == 0 {
		m.Retention = 30 * 24 * time.Hour
	}
	m.MaxChunkBytes = min(m.MaxChunkBytes, maxFrame-1024) // room for the envelope
	return m
}
