package schedule

import (
	"fmt"

	"hearth/keys/mls/suite"
)

// Open finds the key and nonce of generation gen of leaf's ratchet and
// passes them to try, which decrypts the message. Only if try returns nil
// is the key consumed (deleted) and the ratchet advanced; otherwise the
// tree is unchanged, so a forged message cannot destroy keys. A
// generation already consumed or older than the retention window gives
// ErrTooOld; one more than Limits.MaxForward ahead gives ErrTooFar.
// The key and nonce are zeroed when Open returns: try must not keep them.
func (t *SecretTree) Open(leaf uint32, typ RatchetType, gen uint32, try func(KeyNonce) error) error {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return err
	}
	if uint64(gen) < r.next {
		kn, ok := r.skipped[gen]
		if !ok {
			return fmt.Errorf("%w: %s generation %d of leaf %d (next is %d)", ErrTooOld, typ, gen, leaf, r.next)
		}
		if err := try(kn); err != nil {
			return err
		}
		kn.Clear()
		delete(r.skipped, gen)
		return nil
	}
	if uint64(gen)-r.next > uint64(t.limits.MaxForward) {
		return fmt.Errorf("%w: %s generation %d of leaf %d, next is %d, limit %d",
			ErrTooFar, typ, gen, leaf, r.next, t.limits.MaxForward)
	}
	// Derive on copies; commit only after try succeeds.
	keepFrom := uint64(0)
	if uint64(gen)+1 > uint64(t.limits.MaxRetained) {
		keepFrom = uint64(gen) + 1 - uint64(t.limits.MaxRetained)
	}
	var pending []KeyNonce
	secret := r.secret
	defer func() {
		for i := range pending {
			pending[i].Clear()
		}
	}()
	for j := r.next; j < uint64(gen); j++ {
		kn, next, err := t.step(secret, uint32(j), j >= keepFrom)
		if err != nil {
			return fmt.Errorf("mls schedule: ratchet step: %w", err)
		}
		if j >= keepFrom {
			pending = append(pending, kn)
		}
		if j != r.next {
			clear(secret)
		}
		secret = next
	}
	kn, next, err := t.step(secret, gen, true)
	if uint64(gen) != r.next {
		clear(secret)
	}
	if err != nil {
		return fmt.Errorf("mls schedule: ratchet step: %w", err)
	}
	defer kn.Clear()
	if err := try(kn); err != nil {
		clear(next)
		return err
	}
	for _, p := range pending {
		r.skipped[p.Generation] = p
	}
	pending = nil
	clear(r.secret)
	r.secret, r.next = next, uint64(gen)+1
	r.prune(keepFrom)
	return nil
}

// prune deletes skipped keys of generations below keepFrom.
func (r *ratchet) prune(keepFrom uint64) {
	for g, kn := range r.skipped {
		if uint64(g) < keepFrom {
			kn.Clear()
			delete(r.skipped, g)
		}
	}
}

// SenderDataKeyNonce derives the key and nonce protecting a
// PrivateMessage's sender data from sender_data_secret and the first Nh
// bytes of its ciphertext (RFC 9420 §6.3.2).
func SenderDataKeyNonce(s *suite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext
	if len(sample) > s.Nh() {
		sample = sample[:s.Nh()]
	}
	if key, err = s.ExpandWithLabel(senderDataSecret, "key", sample, s.Nk()); err != nil {
		return nil, nil, fmt.Errorf("mls schedule: sender data key: %w", err)
	}
	if nonce, err = s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.Nn()); err != nil {
		return nil, nil, fmt.Errorf("mls schedule: sender data nonce: %w", err)
	}
	return key, nonce, nil
}
