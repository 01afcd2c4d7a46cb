package client

import "errors"

// The MLS seam is client/e2ee: the conversation layer talks to MLS only
// through e2ee.Engine and e2ee.Group. A Client opened without an engine
// (Config.Groups nil) can log in and manage devices, and every operation
// that needs end-to-end encryption fails with ErrNoE2EE: there is no path
// that sends or accepts chat text without MLS.

// ErrNoE2EE is returned by messaging operations when no MLS engine is configured.
var ErrNoE2EE = errors.New("client: end-to-end encryption (MLS group engine) is not available in this build")
