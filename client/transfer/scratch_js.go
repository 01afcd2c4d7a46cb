//go:build js

package transfer

import (
	"errors"
	"io"
)

// scratch holds a download's ciphertext until its hash is checked.
type scratch interface {
	io.ReadWriteSeeker
}

// scratchFile: the browser has no file system for the client, so a
// download's ciphertext is held in memory (a media or history archive of
// the size the server allows).
func scratchFile(string, string) (scratch, func(), error) {
	return &memScratch{}, func() {}, nil
}

type memScratch struct {
	b   []byte
	off int
}

func (m *memScratch) Write(p []byte) (int, error) {
	if end := m.off + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	m.off += copy(m.b[m.off:], p)
	return len(p), nil
}

func (m *memScratch) Read(p []byte) (int, error) {
	if m.off >= len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.off:])
	m.off += n
	return n, nil
}

func (m *memScratch) Seek(off int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = int64(m.off)
	case io.SeekEnd:
		base = int64(len(m.b))
	default:
		return 0, errors.New("transfer: bad whence")
	}
	n := base + off
	if n < 0 || n > int64(len(m.b)) {
		return 0, errors.New("transfer: seek out of range")
	}
	m.off = int(n)
	return n, nil
}
