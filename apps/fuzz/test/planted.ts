/** A bug behind four nested comparisons: each step is a new code block for coverage to see. */
export function planted(a: number[]): void {
  if (a[0] === 3) {
    if (a[1] === 1) {
      if (a[2] === 4) {
        if (a[3] === 1) throw new Error("planted bug reached");
      }
    }
  }
}
