package homeserver

import (
	"errors"
	"strings"

	"hearth/homeserver/keydir"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// setSessionStatus updates the live sessions of a device after approval.
func (s *Server) setSessionStatus(deviceID string, st wire.DeviceStatus) {
	for _, ss := range s.reg.sessionsOfDevices([]string{deviceID}) {
		if ss.status.Swap(int32(st)) != int32(st) && st == wire.DeviceStatus_DEVICE_STATUS_ACTIVE {
			s.userOnline(ss)
		}
	}
}

// linkToken extracts the server's lookup token from a link code: the part
// before "-" (the fingerprint that follows is for the approving person,
// never for the server), uppercased.
func linkToken(code string) string {
	tok, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(code)), "-")
	return tok
}

func (ss *session) pendingDevice(m *wire.PendingDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.PendingDevice"
	tok := linkToken(m.GetLinkCode())
	if len(tok) != linkTokenLen {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no pending device with that code")
	}
	var d *storage.Device
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { d, err = tx.DeviceByLinkToken(tokenHash(tok)); return err })
	if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != ss.userID) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no pending device with that code")
	} else if err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_PendingDevice{PendingDevice: &wire.PendingDeviceInfo{
		DeviceId: d.ID, Name: d.Name, LinkPublicKey: d.LinkPublicKey, SignatureKey: d.SignatureKey, CreatedMs: d.CreatedMs,
	}}}, nil
}

// caller is the session's device as the key directory sees it.
func (ss *session) caller() keydir.Caller {
	return keydir.Caller{UserName: ss.userName, UserID: ss.userID, DeviceID: ss.deviceID,
		Active: ss.status.Load() == int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE)}
}

// directoryRequest serves the key directory's requests (homeserver/keydir,
// remote users through federation); handled is false for other requests.
func (ss *session) directoryRequest(f *wire.ClientFrame) (resp *wire.ServerFrame, err error, handled bool) {
	dir, c := ss.s.dir, ss.caller()
	switch b := f.Body.(type) {
	case *wire.ClientFrame_PublishIdentity:
		resp, err = dir.PublishIdentity(ss.ctx, c, b.PublishIdentity)
	case *wire.ClientFrame_PublishDeviceList:
		resp, err = dir.PublishDeviceList(ss.ctx, c, b.PublishDeviceList)
	case *wire.ClientFrame_PublishKeyPackages:
		resp, err = dir.PublishKeyPackages(ss.ctx, c, b.PublishKeyPackages)
	case *wire.ClientFrame_FetchDeviceList:
		resp, err = fetchDeviceList(ss.ctx, dir, ss.s.fed, b.FetchDeviceList)
	case *wire.ClientFrame_FetchDeviceLists:
		resp, err = fetchDeviceLists(ss.ctx, dir, ss.s.fed, b.FetchDeviceLists)
	case *wire.ClientFrame_ClaimKeyPackages:
		resp, err = claimKeyPackages(ss.ctx, dir, ss.s.fed, ss.s.deviceAddress(ss.userName, ss.deviceID), b.ClaimKeyPackages)
	case *wire.ClientFrame_PendingDevice:
		resp, err = ss.pendingDevice(b.PendingDevice)
	case *wire.ClientFrame_ApproveDevice:
		if resp, err = dir.ApproveDevice(ss.ctx, c, b.ApproveDevice); err == nil {
			ss.s.setSessionStatus(b.ApproveDevice.GetDeviceId(), wire.DeviceStatus_DEVICE_STATUS_ACTIVE)
		}
	case *wire.ClientFrame_FetchApproval:
		var res *wire.ServerFrame
		if res, err = dir.FetchApproval(ss.ctx, c); err == nil {
			if res.GetApproval().GetStatus() == wire.DeviceStatus_DEVICE_STATUS_ACTIVE {
				ss.s.setSessionStatus(ss.deviceID, wire.DeviceStatus_DEVICE_STATUS_ACTIVE)
			}
			resp = res
		}
	case *wire.ClientFrame_ListDevices:
		resp, err = dir.ListDevices(ss.ctx, c)
	case *wire.ClientFrame_RevokeDevice:
		target := b.RevokeDevice.GetDeviceId()
		if resp, err = dir.RevokeDevice(ss.ctx, c, b.RevokeDevice); err != nil {
			break
		}
		if ss.status.Load() == int32(wire.DeviceStatus_DEVICE_STATUS_PENDING) {
			ss.s.log.Info("pending device withdrawn", "user", ss.userName, "device", target)
		} else {
			ss.s.log.Info("device revoked", "user", ss.userName, "device", target, "by", ss.deviceID)
		}
		if target == ss.deviceID {
			// Answer first, then end this very session.
			ss.afterReply = func() { ss.s.reg.closeDevice(target, wire.Code_CODE_DEVICE_REVOKED, "device revoked") }
			break
		}
		ss.s.reg.closeDevice(target, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
	default:
		return nil, nil, false
	}
	return resp, err, true
}
