/** The output of nix/probe.nix (the sandbox as a builder sees it), split into its `## name` sections. */
export function probeSections(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) m.set(line.slice(3), (cur = []));
    else if (line !== '') cur.push(line);
  }
  return m;
}
