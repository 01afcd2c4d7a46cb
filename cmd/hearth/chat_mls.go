package main

import "hearth/client/mlsgroup"

// The chat commands encrypt with the RFC 9420 group state machine of
// keys/mls (through client/mlsgroup).
func init() { newGroupEngine = mlsgroup.New }
