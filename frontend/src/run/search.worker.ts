// Regex search over a run's lines, off the main thread. The page posts new lines as they arrive.
/// <reference lib="webworker" />
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007/g;
const lines: string[] = [];
const MAX_MATCHES = 200_000;

type Msg =
  | { type: 'append'; lines: string[] }
  | { type: 'reset' }
  | { type: 'search'; id: number; pattern: string; regex: boolean; caseSensitive: boolean };

self.onmessage = (ev: MessageEvent<Msg>) => {
  const msg = ev.data;
  if (msg.type === 'append') {
    for (const l of msg.lines) lines.push(l.replace(ANSI, ''));
  } else if (msg.type === 'reset') {
    lines.length = 0;
  } else if (msg.type === 'search') {
    let re: RegExp;
    try {
      const src = msg.regex ? msg.pattern : msg.pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      re = new RegExp(src, msg.caseSensitive ? '' : 'i');
    } catch (err) {
      self.postMessage({ id: msg.id, error: (err as Error).message, matches: new Int32Array(0), searched: lines.length });
      return;
    }
    const found: number[] = [];
    for (let i = 0; i < lines.length && found.length < MAX_MATCHES; i++) if (re.test(lines[i])) found.push(i);
    const matches = Int32Array.from(found);
    self.postMessage({ id: msg.id, matches, searched: lines.length, capped: found.length >= MAX_MATCHES }, { transfer: [matches.buffer] });
  }
};
