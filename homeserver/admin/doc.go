// Package admin is the homeserver's administration interface: the Ops the
// server offers, and the local transport that serves them as JSON over a
// Unix socket owned by the server's user (never exposed on the network).
// `hearth admin …` is its client.
//
// Listen creates DIR/admin.sock with mode 0600 (bound in a private folder,
// then renamed into place); SocketServer serves Ops on it; Dial returns a
// Client, which implements Ops too, or a *NotRunningError when no server
// answers. Routes (JSON bodies; errors are wire.ErrorBody with the
// wire code, and the HTTP status from wire.HTTPStatus):
//
//	GET    /v1/status                     -> Status
//	GET    /v1/users                      -> []UserInfo
//	POST   /v1/users {name,password,admin}-> UserInfo (201)
//	POST   /v1/users/{name}/disable       -> 204
//	POST   /v1/users/{name}/enable        -> 204
//	DELETE /v1/users/{name}               -> 204
//	PUT    /v1/users/{name}/password {password} -> 204
//	GET    /v1/users/{name}/devices       -> []DeviceInfo
//	DELETE /v1/users/{name}/devices/{id}  -> 204 (revoke)
//	POST   /v1/backup                     -> the backup archive (tar), streamed (socket only)
//	PUT    /v1/users/{name}/role {role}   -> 204 (role "admin" or "user")
//	GET    /v1/audit?limit=N              -> []AuditEntry, newest first
//
// plus the federation and invite routes (federation.go, invites.go).
//
// The same routes are served remotely by NewRESTHandler under PathREST
// (/hearth/v1/admin/users is /v1/users, …) on the server's HTTPS listener,
// to bearers of an access token of an admin-role user's device
// (Authorizer): no or a bad token is 401, a non-admin 403. DialREST is
// their client, the same Client type as Dial's, so `hearth admin --server`
// runs the same subcommands.
//
// Audit: every changing request on the socket (actor "local") and every
// authorized or role-refused REST request (actor user@domain/DEVICE) is
// written to an AuditLog after it is answered: route, what it named,
// status and wire code. Secrets (passwords, invite codes) are never
// recorded.
//
// Passwords travel as base64 JSON bytes and are cleared after use.
package admin
