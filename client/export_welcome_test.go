package client

import (
	"database/sql"
	"testing"

	_ "github.com/mattn/go-sqlite3" // the test server's database, opened beside it

	"hearth/client/store"
)

// DamageWelcomes changes the Welcomes of conv stored on the server, as a
// member that sent Welcomes its new members cannot open (or a path that
// damaged them) leaves them: field "group_info" cuts the GroupInfo
// delivered with them short, "welcome" changes the last bytes of the
// Welcome (the tag of its encrypted GroupInfo). It returns the rows changed.
func (ts *testServer) DamageWelcomes(t *testing.T, conv, field string) int64 {
	t.Helper()
	var q string
	switch field {
	case "group_info":
		q = `UPDATE conversation_log SET group_info = substr(group_info, 1, length(group_info) / 2) WHERE conv_id = ? AND welcome IS NOT NULL AND group_info IS NOT NULL`
	case "welcome":
		q = `UPDATE conversation_log SET welcome = substr(welcome, 1, length(welcome) - 8) || x'0102030405060708' WHERE conv_id = ? AND welcome IS NOT NULL`
	default:
		t.Fatalf("DamageWelcomes: no field %q", field)
	}
	db, err := sql.Open("sqlite3", "file:"+ts.db.Path()+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(q, conv)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := res.RowsAffected()
	return n
}

// DamageGroupState replaces conv's stored MLS state with bytes that do
// not load, as a damaged profile holds them.
func (c *Client) DamageGroupState(t *testing.T, conv string) {
	t.Helper()
	if err := c.st.Update(func(tx *store.Tx) error { return tx.PutGroup(conv, []byte("not a group state")) }); err != nil {
		t.Fatal(err)
	}
}
