import { diffLines, diffStats, MAX_TABLE_CELLS, splitLines } from '../diff';

/** Rebuild both sides from a diff: a correct diff must give back exactly the inputs. */
function sides(lines: ReturnType<typeof diffLines>): { a: string[]; b: string[] } {
  return {
    a: lines.filter(l => l.op !== 'add').map(l => l.text),
    b: lines.filter(l => l.op !== 'del').map(l => l.text)
  };
}

describe('splitLines', () => {
  it('drops only the final newline', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a\nb\n')).toEqual(['a', 'b']);
    expect(splitLines('a\r\n\nb')).toEqual(['a', '', 'b']);
  });
});

describe('diffLines', () => {
  it('marks identical texts as unchanged with both line numbers', () => {
    const out = diffLines('x = 1\nprint(x)\n', 'x = 1\nprint(x)');
    expect(out.map(l => l.op)).toEqual(['same', 'same']);
    expect(out[1]).toEqual({ op: 'same', text: 'print(x)', oldLine: 2, newLine: 2 });
  });

  it('shows a one-line fix as a delete and an add in place', () => {
    const out = diffLines(
      'import os\nprint(undefined_name)\nprint("end")',
      'import os\nundefined_name = 1\nprint(undefined_name)\nprint("end")'
    );
    expect(out.map(l => `${l.op}:${l.text}`)).toEqual([
      'same:import os',
      'add:undefined_name = 1',
      'same:print(undefined_name)',
      'same:print("end")'
    ]);
    expect(out[1].newLine).toBe(2);
    expect(out[2]).toMatchObject({ oldLine: 2, newLine: 3 });
  });

  it('finds the longest common subsequence, not just prefix and suffix', () => {
    const a = 'a\nb\nc\nd\ne\nf';
    const b = 'a\nx\nc\ny\ne\nf\ng';
    const out = diffLines(a, b);
    expect(out.filter(l => l.op === 'same').map(l => l.text)).toEqual(['a', 'c', 'e', 'f']);
    expect(diffStats(out)).toEqual({ added: 3, removed: 2 });
    expect(sides(out)).toEqual({ a: a.split('\n'), b: b.split('\n') });
  });

  it('handles empty sides', () => {
    expect(diffLines('', 'a\nb').map(l => l.op)).toEqual(['add', 'add']);
    expect(diffLines('a\nb', '').map(l => l.op)).toEqual(['del', 'del']);
    expect(diffLines('', '')).toEqual([]);
  });

  it('round-trips random edits', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const a = Array.from({ length: rand(12) }, () => `l${rand(5)}`);
      const b = Array.from({ length: rand(12) }, () => `l${rand(5)}`);
      const out = diffLines(a.join('\n'), b.join('\n'));
      expect(sides(out)).toEqual({ a, b });
      // Line numbers count up by one on each side.
      const olds = out.filter(l => l.oldLine !== undefined).map(l => l.oldLine);
      const news = out.filter(l => l.newLine !== undefined).map(l => l.newLine);
      expect(olds).toEqual(a.map((_, i) => i + 1));
      expect(news).toEqual(b.map((_, i) => i + 1));
    }
  });

  it('stays correct past the size cap', () => {
    const n = Math.ceil(Math.sqrt(MAX_TABLE_CELLS)) + 2;
    const a = Array.from({ length: n }, (_, i) => `a${i}`);
    const b = Array.from({ length: n }, (_, i) => `b${i}`);
    const out = diffLines(['head', ...a, 'tail'].join('\n'), ['head', ...b, 'tail'].join('\n'));
    expect(out[0]).toMatchObject({ op: 'same', text: 'head' });
    expect(out[out.length - 1]).toMatchObject({ op: 'same', text: 'tail' });
    expect(diffStats(out)).toEqual({ added: n, removed: n });
  });
});
