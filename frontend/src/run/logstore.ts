// A run's output as lines, kept outside React: columns of plain arrays (a million lines stay cheap),
// whole lines per target and stream (chunks are split at newlines; the partial tail waits for more).
import type { ExecEvent } from '@opsconductor/frontend-adapter';

export const STDOUT = 0;
export const STDERR = 1;
export const SYSTEM = 2;

export interface LogFilter {
  target: number | null; // target index, or all
  streams: [boolean, boolean, boolean]; // stdout, stderr, system lines
}

export class LogStore {
  text: string[] = [];
  target: number[] = [];
  stream: number[] = [];
  at: number[] = [];
  targetIds: string[] = [];
  private targetIndex = new Map<string, number>();
  private partial = new Map<string, { text: string; at: number }>();
  lastSeq = 0;

  get length(): number {
    return this.text.length;
  }

  indexOf(targetId: string): number {
    let i = this.targetIndex.get(targetId);
    if (i === undefined) {
      i = this.targetIds.length;
      this.targetIds.push(targetId);
      this.targetIndex.set(targetId, i);
    }
    return i;
  }

  private push(t: number, s: number, text: string, at: number) {
    this.text.push(text);
    this.target.push(t);
    this.stream.push(s);
    this.at.push(at);
  }

  private flush(t: number) {
    for (const s of [STDOUT, STDERR]) {
      const key = `${t}:${s}`;
      const p = this.partial.get(key);
      if (p && p.text) this.push(t, s, p.text, p.at);
      this.partial.delete(key);
    }
  }

  /** Add events (in seq order); returns the first new line's index. */
  append(events: ExecEvent[]): number {
    const start = this.text.length;
    for (const e of events) {
      if (e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      const at = Date.parse(e.at);
      const t = e.targetId ? this.indexOf(e.targetId) : -1;
      if ((e.type === 'STDOUT' || e.type === 'STDERR') && t >= 0) {
        const s = e.type === 'STDOUT' ? STDOUT : STDERR;
        const key = `${t}:${s}`;
        const pieces = (e.data ?? '').split('\n');
        const prev = this.partial.get(key);
        if (prev) pieces[0] = prev.text + pieces[0];
        const firstAt = prev ? prev.at : at;
        for (let i = 0; i < pieces.length - 1; i++) this.push(t, s, pieces[i].replace(/\r$/, ''), i === 0 ? firstAt : at);
        const tail = pieces[pieces.length - 1];
        if (tail) this.partial.set(key, { text: tail, at: pieces.length > 1 ? at : firstAt });
        else this.partial.delete(key);
      } else if (e.type === 'STEP_FINISHED' && t >= 0) {
        this.flush(t);
        this.push(t, SYSTEM, `── step ${e.stepName ?? ''} ${e.status ?? 'finished'}${e.exitCode != null ? ` (exit ${e.exitCode})` : ''}`, at);
      } else if (e.type === 'TARGET_STARTED' && t >= 0) {
        this.push(t, SYSTEM, '── started', at);
      } else if (e.type === 'TARGET_FINISHED' && t >= 0) {
        this.flush(t);
        this.push(t, SYSTEM, `── ${e.status ?? 'finished'}${e.exitCode != null ? ` (exit ${e.exitCode})` : ''}${e.data ? `: ${e.data}` : ''}`, at);
      } else if (e.type === 'EXECUTION_FINISHED') {
        for (let i = 0; i < this.targetIds.length; i++) this.flush(i);
      }
    }
    return start;
  }

  /** Indices of lines passing the filter, from `from` on (for incremental views). */
  select(filter: LogFilter, from = 0): number[] {
    const out: number[] = [];
    const { target, streams } = filter;
    for (let i = from; i < this.text.length; i++) {
      if (target !== null && this.target[i] !== target) continue;
      if (!streams[this.stream[i]]) continue;
      out.push(i);
    }
    return out;
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007/g;
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

/** Plain text of the given lines (ANSI removed, no timestamps); with a name column when names is given. */
export function plainText(store: LogStore, lines: Iterable<number>, name?: (targetIndex: number) => string): string {
  const parts: string[] = [];
  for (const i of lines) {
    const text = stripAnsi(store.text[i]);
    parts.push(name ? `${name(store.target[i])} | ${text}` : text);
  }
  return parts.join('\n') + '\n';
}
