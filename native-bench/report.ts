/** Printing for benchmarks: one markdown table per benchmark, figures and ratios side by side. */
export interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** Name of the row this one is compared against (same table). */
  readonly baseline?: string;
}

export function printTable(title: string, rows: readonly Row[]): string {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const lines = [`### ${title}`, "", "| case | median | unit | ratio |", "|---|---:|---|---:|"];
  for (const r of rows) {
    const base = r.baseline === undefined ? undefined : byName.get(r.baseline);
    const ratio = base === undefined ? "" : `${(r.value / base.value).toFixed(2)}x ${base.name}`;
    lines.push(`| ${r.name} | ${format(r.value)} | ${r.unit} | ${ratio} |`);
  }
  const text = lines.join("\n") + "\n";
  process.stdout.write(text + "\n");
  return text;
}

function format(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
