// Command hearth is the one Hearth binary: `hearth init`, `hearth serve`,
// `hearth admin …` and `hearth chat …`. It only wires the packages
// together; no logic lives here.
package main
