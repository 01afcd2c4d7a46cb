// Package treemath is the index arithmetic of the array-represented
// left-balanced binary tree that MLS uses for its ratchet tree (RFC 9420
// §4.1, Appendix C): node and leaf indices, levels, parents, siblings,
// direct paths, copaths and common ancestors. It knows nothing of what
// the nodes hold.
package treemath
