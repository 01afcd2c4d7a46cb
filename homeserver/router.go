package homeserver

import "hearth/homeserver/delivery"

// Router carries "deliver to device X: new entries up to seq N" from the
// transaction that queued them to the sessions serving X; the in-process
// one is delivery.LocalRouter (DESIGN.md "Scale-out seam").
type Router = delivery.Router
