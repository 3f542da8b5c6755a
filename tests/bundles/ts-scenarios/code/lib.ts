// A sibling module: relative imports inside a bundle work.
export function double(n: number): number {
  return n * 2;
}
