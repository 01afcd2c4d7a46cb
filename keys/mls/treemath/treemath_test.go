package treemath

import (
	"fmt"
	"testing"
)

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func checkOpt(t *testing.T, what string, i int, got NodeIndex, ok bool, want *uint32) {
	t.Helper()
	switch {
	case want == nil && ok:
		t.Errorf("%s(%d) = %d, want none", what, i, got)
	case want != nil && !ok:
		t.Errorf("%s(%d) = none, want %d", what, i, *want)
	case want != nil && uint32(got) != *want:
		t.Errorf("%s(%d) = %d, want %d", what, i, got, *want)
	}
}

func TestTreeMathVectors(t *testing.T) {
	var vs []treeMathVector
	loadVectors(t, "tree-math.json", &vs)
	c := newTally("tree-math.json")
	for _, v := range vs {
		c.Run(t, fmt.Sprintf("n=%d", v.NLeaves), 0, func(t *testing.T) {
			if got := NodeWidth(v.NLeaves); got != v.NNodes {
				t.Errorf("NodeWidth = %d, want %d", got, v.NNodes)
			}
			if got := Root(v.NLeaves); uint32(got) != v.Root {
				t.Errorf("Root = %d, want %d", got, v.Root)
			}
			for i := range int(v.NNodes) {
				x := NodeIndex(i)
				l, ok := Left(x)
				checkOpt(t, "left", i, l, ok, v.Left[i])
				r, ok := Right(x)
				checkOpt(t, "right", i, r, ok, v.Right[i])
				p, ok := Parent(x, v.NLeaves)
				checkOpt(t, "parent", i, p, ok, v.Parent[i])
				s, ok := Sibling(x, v.NLeaves)
				checkOpt(t, "sibling", i, s, ok, v.Sibling[i])
			}
		})
	}
	c.Report(t)
}

func TestDirectPathCopath(t *testing.T) {
	// Figure from RFC 9420 §4.1 (8 leaves): leaf 2 (node 4).
	dp := DirectPath(4, 8)
	if fmt.Sprint(dp) != "[5 3 7]" {
		t.Errorf("DirectPath(4, 8) = %v", dp)
	}
	cp := Copath(4, 8)
	if fmt.Sprint(cp) != "[6 1 11]" {
		t.Errorf("Copath(4, 8) = %v", cp)
	}
	if len(DirectPath(0, 1)) != 0 || len(Copath(0, 1)) != 0 {
		t.Error("one-leaf tree has a path")
	}
	for _, tc := range []struct{ x, y, want NodeIndex }{
		{0, 2, 1}, {0, 6, 3}, {4, 14, 7}, {1, 2, 1}, {3, 6, 3}, {8, 8, 8}, {10, 12, 11}, {0, 16, 15},
	} {
		if got := CommonAncestor(tc.x, tc.y); got != tc.want {
			t.Errorf("CommonAncestor(%d,%d) = %d, want %d", tc.x, tc.y, got, tc.want)
		}
		if !IsAncestor(tc.want, tc.x) || !IsAncestor(tc.want, tc.y) {
			t.Errorf("IsAncestor(%d, {%d,%d}) false", tc.want, tc.x, tc.y)
		}
	}
	if IsAncestor(1, 4) || IsAncestor(5, 2) {
		t.Error("IsAncestor true for a non-ancestor")
	}
}

func TestTreeMathEmptyTree(t *testing.T) {
	if Root(0) != 0 || NodeWidth(0) != 0 || DirectPath(0, 0) != nil || Copath(0, 0) != nil {
		t.Error("empty tree has a path")
	}
	if _, ok := Parent(0, 0); ok {
		t.Error("empty tree has a parent")
	}
	if _, ok := Sibling(3, 2); ok {
		t.Error("node outside a 2-leaf tree has a sibling")
	}
}
