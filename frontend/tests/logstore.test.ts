import { describe, expect, it } from 'vitest';
import { LogStore, plainText, stripAnsi, STDERR, STDOUT, SYSTEM } from '../src/run/logstore';

const at = '2026-01-01T00:00:00Z';

describe('LogStore', () => {
  it('splits chunks into whole lines per target and stream, keeping partial tails', () => {
    const s = new LogStore();
    s.append([
      { seq: 1, type: 'STDOUT', targetId: 'a', data: 'one\ntw', at },
      { seq: 2, type: 'STDOUT', targetId: 'b', data: 'b1\n', at },
      { seq: 3, type: 'STDOUT', targetId: 'a', data: 'o\nthree', at },
      { seq: 4, type: 'STDERR', targetId: 'a', data: 'oops\n', at },
      { seq: 5, type: 'TARGET_FINISHED', targetId: 'a', status: 'SUCCEEDED', exitCode: 0, at },
    ]);
    const a = s.indexOf('a');
    const lines = s.select({ target: a, streams: [true, true, true] }).map((i) => s.text[i]);
    expect(lines).toEqual(['one', 'two', 'oops', 'three', '── SUCCEEDED (exit 0)']);
    expect(s.select({ target: null, streams: [false, true, false] }).map((i) => s.stream[i])).toEqual([STDERR]);
    expect(s.select({ target: null, streams: [false, false, true] }).map((i) => s.stream[i])).toEqual([SYSTEM]);
    expect(s.select({ target: s.indexOf('b'), streams: [true, false, false] }).map((i) => [s.text[i], s.stream[i]])).toEqual([['b1', STDOUT]]);
  });

  it('ignores events it already has (a resumed stream may overlap)', () => {
    const s = new LogStore();
    s.append([{ seq: 1, type: 'STDOUT', targetId: 'a', data: 'x\n', at }]);
    s.append([{ seq: 1, type: 'STDOUT', targetId: 'a', data: 'x\n', at }, { seq: 2, type: 'STDOUT', targetId: 'a', data: 'y\n', at }]);
    expect(s.text).toEqual(['x', 'y']);
  });

  it('copies plain text without timestamps or ANSI codes', () => {
    const s = new LogStore();
    s.append([{ seq: 1, type: 'STDOUT', targetId: 'a', data: '\u001b[31mred\u001b[0m\nplain\n', at }]);
    expect(stripAnsi('\u001b[1;32mok\u001b[0m')).toBe('ok');
    expect(plainText(s, [0, 1])).toBe('red\nplain\n');
    expect(plainText(s, [0], () => 'web-1')).toBe('web-1 | red\n');
  });

  it('keeps a million lines', () => {
    const s = new LogStore();
    const chunk = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const events = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, type: 'STDOUT', targetId: `t${i % 100}`, data: chunk, at }));
    s.append(events);
    expect(s.length).toBe(1_000_000);
    expect(s.select({ target: s.indexOf('t7'), streams: [true, true, true] })).toHaveLength(10_000);
  });
});
