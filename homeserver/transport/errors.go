package transport

import "hearth/homeserver/wire"

var errNotFound = wire.Errorf("transport", wire.Code_CODE_NOT_FOUND, "no such endpoint")
