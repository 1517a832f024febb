// The virtualized log: only the lines on screen are in the DOM (react-virtuoso, fixed row height),
// ANSI colours by anser (parsed per visible line, cached).
import { Box } from '@mui/material';
import Anser from 'anser';
import { memo, type CSSProperties } from 'react';
import { Virtuoso, type VirtuosoHandle } from 'react-virtuoso';
import { STDERR, SYSTEM, type LogStore } from './logstore';

const ROW = 18;
const cache = new Map<string, { content: string; style: CSSProperties }[]>();

function ansiParts(text: string) {
  if (!text.includes('\u001b')) return null;
  let parts = cache.get(text);
  if (!parts) {
    parts = Anser.ansiToJson(text, { use_classes: false, remove_empty: true }).map((p) => {
      const style: CSSProperties = {};
      if (p.fg) style.color = `rgb(${p.fg})`;
      if (p.bg) style.backgroundColor = `rgb(${p.bg})`;
      if (p.decorations?.includes('bold')) style.fontWeight = 700;
      if (p.decorations?.includes('italic')) style.fontStyle = 'italic';
      if (p.decorations?.includes('underline')) style.textDecoration = 'underline';
      return { content: p.content, style };
    });
    if (cache.size > 5000) cache.clear();
    cache.set(text, parts);
  }
  return parts;
}

function hhmmss(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

const Line = memo(function Line({ store, index, name, showName, hit }: {
  store: LogStore; index: number; name: string; showName: boolean; hit: boolean;
}) {
  const text = store.text[index];
  const stream = store.stream[index];
  const parts = ansiParts(text);
  return (
    <div className="log-line" data-line={index} style={{
      height: ROW, lineHeight: `${ROW}px`, whiteSpace: 'pre', paddingLeft: 4,
      background: hit ? '#5c4a00' : undefined,
      color: stream === STDERR ? '#ff8a80' : stream === SYSTEM ? '#9ecbff' : '#e6e6e6',
    }}>
      <span style={{ color: '#a0a0a0', userSelect: 'none' }}>{hhmmss(store.at[index])} </span>
      {showName && <span style={{ color: '#c5a5ff', userSelect: 'none' }}>{name.padEnd(14).slice(0, 14)} </span>}
      {parts ? parts.map((p, i) => <span key={i} style={p.style}>{p.content}</span>) : <span>{text}</span>}
    </div>
  );
});

export function LogViewer({ store, view, total, version, follow, onFollowChange, nameOf, showName, hits, innerRef }: {
  store: LogStore;
  view: number[] | null; // null: every line
  total: number;
  version: number;
  follow: boolean;
  onFollowChange: (atBottom: boolean) => void;
  nameOf: (targetIndex: number) => string;
  showName: boolean;
  hits: Set<number> | null;
  innerRef: React.RefObject<VirtuosoHandle | null>;
}) {
  return (
    <Box sx={{ bgcolor: '#161616', fontFamily: 'ui-monospace, Menlo, Consolas, monospace', fontSize: 12.5, borderRadius: 1,
      height: { xs: 'calc(100vh - 260px)', md: 'calc(100vh - 330px)' }, minHeight: 260 }}
      role="log" aria-label="Run output" aria-live="off" data-testid="log-viewer" data-lines={total} data-version={version}>
      <Virtuoso
        ref={innerRef}
        style={{ height: '100%' }}
        totalCount={total}
        fixedItemHeight={ROW}
        defaultItemHeight={ROW}
        increaseViewportBy={200}
        followOutput={follow ? 'auto' : false}
        atBottomStateChange={onFollowChange}
        atBottomThreshold={40}
        computeItemKey={(i) => (view ? view[i] : i)}
        itemContent={(i) => {
          const idx = view ? view[i] : i;
          return <Line store={store} index={idx} name={nameOf(store.target[idx])} showName={showName} hit={!!hits?.has(idx)} />;
        }}
      />
    </Box>
  );
}
